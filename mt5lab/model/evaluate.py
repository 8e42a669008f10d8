"""An honest out-of-sample verdict on a model: cross-validated predictions, metrics per fold and
overall, the strategy net of costs, PSR/DSR and importance.

:func:`evaluate` takes a training set (``mt5lab.training_set(..., labels=[...])``: ``symbol``,
``event_timestamp``, the features, the label and ``label_end_timestamp``), splits it with
:mod:`mt5lab.model.cv` (purged, embargoed), fits :mod:`mt5lab.model.estimators` per fold and scores
only the test rows. Nothing is fitted on a row it is scored on, nor on a row whose label window
overlaps a test row's.

The Sharpe is per holding period of ``h`` bars (see :mod:`mt5lab.model.metrics`), not annualized.
The DSR needs the number of trials and the variance of their Sharpe ratios: :meth:`Evaluation.deflate`
sets them (:mod:`mt5lab.model.tracking` takes them from the experiment's recorded runs); until then
the evaluation counts as the only trial (DSR = PSR against 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mt5lab.catalog import BY_NAME
from mt5lab.errors import TrainingSetError
from mt5lab.model import cv as cvmod
from mt5lab.model import estimators, importance, metrics
from mt5lab.model.sharpe import deflated_sharpe_ratio, expected_max_sharpe, probabilistic_sharpe_ratio
from mt5lab.training.labels import LABEL_END, parse_label


@dataclass
class Evaluation:
    """Result of :func:`evaluate`.

    ``config``: the request. ``features``: the feature columns, in order. ``folds``: one dict per
    split (rows, purged, embargoed, time ranges, IC, rank IC, hit rate, fold Sharpe).
    ``predictions``: pandas, one row per out-of-sample scored decision (``symbol``,
    ``event_timestamp`` UTC, ``label_end_timestamp``, ``fold``, ``prediction``, ``label``, ``return``).
    ``strategy``: per holding period (see :func:`mt5lab.model.metrics.strategy_returns`).
    ``metrics``: the overall numbers.
    ``importance`` / ``importance_by_view``: :func:`mt5lab.model.importance.summarize` tables.
    ``nulls``: :class:`mt5lab.model.estimators.NullCounts` of the whole set, as a dict.
    ``cv_folds``: the :class:`mt5lab.model.cv.CVFold` splits; ``times``: every row's decision time.
    """

    config: dict
    features: list[str]
    folds: list[dict]
    predictions: pd.DataFrame
    strategy: pd.DataFrame
    metrics: dict
    importance: pd.DataFrame
    importance_by_view: pd.DataFrame
    nulls: dict
    cv_folds: list = field(default_factory=list, repr=False)
    paths: list = field(default_factory=list)
    times: pd.Series | None = field(default=None, repr=False)

    def deflate(self, n_trials: int, sharpe_variance: float) -> dict:
        """Set the DSR from ``n_trials`` and the variance of their per-period Sharpe ratios."""
        m = self.metrics
        m["n_trials"] = int(n_trials)
        m["sharpe_variance"] = float(sharpe_variance)
        m["sharpe_benchmark"] = expected_max_sharpe(n_trials, sharpe_variance)
        ok = math.isfinite(m["sharpe"]) and m["periods"] >= 2
        m["dsr"] = deflated_sharpe_ratio(m["sharpe"], m["periods"], n_trials, m["skew"], m["kurtosis"],
                                         sharpe_variance) if ok else float("nan")
        return m

    def summary(self) -> dict:
        """JSON-ready: the overall metrics, folds, importance by view and feature, nulls."""
        def clean(v):
            if isinstance(v, float | np.floating):
                return float(v) if math.isfinite(v) else None
            if isinstance(v, np.integer):
                return int(v)
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, list | tuple):
                return [clean(x) for x in v]
            return v

        by_view = {r["view"]: clean(r["mda"]) for r in self.importance_by_view.to_dict("records")}
        out = dict(self.metrics) | {"folds": self.folds, "importance_by_view": by_view,
                                    "importance_by_feature": self.importance.to_dict("records"),
                                    "nulls": self.nulls, "config": self.config}
        if self.paths:
            out["paths"] = self.paths
        return clean(out)


def feature_columns(df) -> list[str]:
    """The catalog features among ``df``'s columns, in the frame's order."""
    cols = [c for c in df.columns if c in BY_NAME]
    if not cols:
        raise TrainingSetError("model: the training set has no catalog feature column")
    return cols


def to_pandas(df) -> pd.DataFrame:
    if isinstance(df, pd.DataFrame):
        return df.reset_index(drop=True)
    return df.to_pandas()


def matrix(df: pd.DataFrame, features: list[str]) -> np.ndarray:
    """Features as float64 (NaN for null), rows x features."""
    return np.column_stack([pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
                            for c in features]) if features else np.empty((len(df), 0))


def evaluate(df, label: str = "fwd_return_5", *, cv: str = "walk-forward", folds: int = 5, embargo: int = 0,
             test_groups: int = 2, model: str = "lightgbm", cost_bps: float = 2.0, point: dict | None = None,
             seed: int = 0, with_importance: bool = True, repeats: int = 1, params: dict | None = None,
             n_jobs: int = 1) -> Evaluation:
    """Cross-validate ``model`` on the training set ``df`` (pandas or polars) for ``label``.

    ``cv``: ``walk-forward``, ``kfold`` or ``cpcv`` (``folds`` = groups N, ``test_groups`` = k).
    ``embargo`` in bars (distinct decision times). ``cost_bps``: cost per unit traded where a row
    has no ``spread``. ``n_jobs``: LightGBM threads (default 1: the folds are small, and OpenMP's
    spin-waiting on a busy machine costs more than it gains). ``with_importance``: compute the MDA
    (``repeats`` shuffles per feature and per view and fold). Raises
    :class:`mt5lab.errors.TrainingSetError` for a missing label or
    ``label_end_timestamp`` column, an unknown model or scheme, too few rows, a negative or
    non-finite ``cost_bps`` or ``repeats < 1``.
    """
    lab = parse_label(label)
    estimators.check(model)
    if not (math.isfinite(cost_bps) and cost_bps >= 0):
        raise TrainingSetError(f"model: --cost-bps must be a finite number >= 0, got {cost_bps}")
    if with_importance and repeats < 1:
        raise TrainingSetError(f"model: --repeats must be at least 1 shuffle per feature, got {repeats}")
    pdf = to_pandas(df)
    for col in (label, LABEL_END, "symbol", "event_timestamp"):
        if col not in pdf.columns:
            raise TrainingSetError(f"model: the training set has no {col!r} column (build it with "
                                   f"labels=[{label!r}])")
    feats = feature_columns(pdf)
    X = matrix(pdf, feats)
    y = pd.to_numeric(pdf[label], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    ret_col = f"fwd_return_{lab.horizon}"
    ret = pd.to_numeric(pdf[ret_col], errors="coerce").to_numpy(dtype=float, na_value=np.nan) \
        if ret_col in pdf.columns else np.full(len(pdf), np.nan)
    splits = cvmod.split(pdf, cv, folds, embargo=embargo, test_groups=test_groups)
    rng = np.random.default_rng(seed)
    pred_sum = np.zeros(len(pdf))
    pred_n = np.zeros(len(pdf))
    fold_of = np.full(len(pdf), -1)
    per_split: list[np.ndarray] = []
    fold_rows, mda_f, view_f, mdi_f = [], [], [], []
    t = pdf["event_timestamp"]
    for i, f in enumerate(splits):
        m, counts = estimators.fit(model, X[f.train], y[f.train], seed=seed + i, params=params, n_jobs=n_jobs)
        p = estimators.predict(m, X[f.test])
        per_split.append(p)
        pred_sum[f.test] += p
        pred_n[f.test] += 1
        fold_of[f.test] = i
        yt = y[f.test]
        fs = _fold_strategy(pdf, f.test, p, ret, lab.horizon, cost_bps, point)
        fold_rows.append({"fold": i, "test_groups": list(f.groups), "train_rows": int(f.train.size),
                          "train_rows_with_label": counts.rows, "test_rows": int(f.test.size),
                          "test_rows_with_label": int(np.isfinite(yt).sum()),
                          "purged": f.purged, "embargoed": f.embargoed,
                          "train_start": _iso(t.iloc[f.train].min()) if f.train.size else None,
                          "train_end": _iso(t.iloc[f.train].max()) if f.train.size else None,
                          "test_start": _iso(t.iloc[f.test].min()), "test_end": _iso(t.iloc[f.test].max()),
                          "ic": metrics.ic(p, yt), "rank_ic": metrics.rank_ic(p, yt),
                          "hit_rate": metrics.hit_rate(p, yt), "sharpe": fs})
        if with_importance:
            mda, views = importance.fold_mda(m, X[f.test], yt, feats, rng, repeats)
            mda_f.append(mda)
            view_f.append(views)
        mdi_f.append(estimators.native_importance(m, model, len(feats)))
    scored = pred_n > 0
    pred = np.where(scored, pred_sum / np.maximum(pred_n, 1), np.nan)
    keep = [c for c in ("symbol", "event_timestamp", LABEL_END, "close", "spread") if c in pdf.columns]
    preds = pdf.loc[scored, keep].copy()
    preds["fold"] = fold_of[scored]
    preds["prediction"] = pred[scored]
    preds["label"] = y[scored]
    preds["return"] = ret[scored]
    strat = metrics.strategy_returns(preds.assign(label=preds["return"]), lab.horizon, cost_bps, point)
    summ = metrics.strategy_summary(strat)
    ics = [r["ic"] for r in fold_rows]
    rics = [r["rank_ic"] for r in fold_rows]
    ok = np.isfinite(preds["label"].to_numpy())
    overall = {"label": label, "model": model, "cv": cv, "folds_n": len(splits), "embargo": embargo,
               "rows": len(pdf), "scored_rows": int(ok.sum()),
               "ic": _nanmean(ics), "ic_std": _nanstd(ics), "icir": metrics.icir(ics),
               "rank_ic": _nanmean(rics), "rank_icir": metrics.icir(rics),
               "ic_pooled": metrics.ic(preds["prediction"], preds["label"]),
               "rank_ic_pooled": metrics.rank_ic(preds["prediction"], preds["label"]),
               "hit_rate": metrics.hit_rate(preds["prediction"], preds["label"]), **summ}
    overall["psr"] = probabilistic_sharpe_ratio(summ["sharpe"], summ["periods"], summ["skew"], summ["kurtosis"]) \
        if math.isfinite(summ["sharpe"]) and summ["periods"] >= 2 else float("nan")
    by_feature, by_view = importance.summarize(feats, mda_f, view_f, mdi_f)
    config = {"label": label, "cv": cv, "folds": folds, "embargo": embargo, "test_groups": test_groups,
              "model": model, "cost_bps": cost_bps, "seed": seed, "repeats": repeats, "params": params or {}}
    ev = Evaluation(config, feats, fold_rows, preds.reset_index(drop=True), strat, overall, by_feature, by_view,
                    estimators.null_counts(X, y, model).as_dict(), splits, times=pdf["event_timestamp"])
    if cv == "cpcv":
        ev.paths = _path_sharpes(pdf, splits, per_split, folds, ret, lab.horizon, cost_bps, point)
    ev.deflate(1, 0.0)
    return ev


def _fold_strategy(pdf, rows, p, ret, horizon, cost_bps, point) -> float:
    keep = [c for c in ("symbol", "event_timestamp", LABEL_END, "close", "spread") if c in pdf.columns]
    fr = pdf.iloc[rows][keep].assign(prediction=p, label=ret[rows])
    return metrics.strategy_summary(metrics.strategy_returns(fr, horizon, cost_bps, point))["sharpe"]


def _path_sharpes(pdf, splits, per_split, n_groups, ret, horizon, cost_bps, point) -> list[dict]:
    out = []
    for k, path in enumerate(cvmod.paths(splits, n_groups)):
        rows, preds = [], []
        for si, g in path:
            f = splits[si]
            mask = np.isin(f.test, f.blocks[g])
            rows.append(f.test[mask])
            preds.append(per_split[si][mask])
        r = np.concatenate(rows)
        out.append({"path": k, "sharpe": _fold_strategy(pdf, r, np.concatenate(preds), ret, horizon, cost_bps,
                                                         point)})
    return out


def _iso(ts) -> str | None:
    return None if ts is None or pd.isna(ts) else pd.Timestamp(ts).isoformat()


def _nanmean(v) -> float:
    a = np.asarray([x for x in v if x is not None and math.isfinite(x)], dtype=float)
    return float(a.mean()) if a.size else float("nan")


def _nanstd(v) -> float:
    a = np.asarray([x for x in v if x is not None and math.isfinite(x)], dtype=float)
    return float(a.std(ddof=1)) if a.size > 1 else float("nan")
