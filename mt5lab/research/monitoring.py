"""Feature drift: the population stability index (PSI) of every feature, reference vs recent window.

    PSI = sum over bins of (p_cur - p_ref) * ln(p_cur / p_ref)

Bins come from the *reference* window only: its deciles for a continuous feature (so each holds
~10% of the reference), or its distinct values for a discrete one (``cdl_doji``: 0/100). Values of
the recent window outside the reference range fall into the open-ended first or last bin. Empty bins
are floored at :data:`EPS` so the log stays finite. Conventional reading: below 0.1 stable, 0.1 to
0.25 a moderate shift, 0.25 and above drift (:data:`MODERATE`, :data:`DRIFT`).

Nulls (warm-up, zero denominators) are dropped before binning; a window with fewer than
:data:`MIN_COUNT` values gives ``insufficient data`` rather than a number, and so does a feature that
holds one and the same value in both windows (``tick_volume`` of a source without ticks: all zero):
there is no distribution to compare, which is not the same as "stable".

Two kinds of feature (:func:`kind`): **level** features are in price or volume units (prices, moving
averages, bands, ATR, MACD, OBV/AD, volumes) and drift by nature on a trending series; **scale-free**
ones (returns, ratios, oscillators in 0..100, candle patterns) should not. They are ranked apart.
PSI saturates when the recent window lies wholly outside the reference range (every feature of a
trend then ties at the same value), so ties are broken by the two-sample Kolmogorov-Smirnov statistic
``ks = max |F_ref(x) - F_cur(x)|`` (0..1; Kolmogorov 1933, Smirnov 1948), which measures how far apart
the distributions are rather than how many bins moved.

Look-ahead: none; both windows are closed feature rows. Choose the reference window as the model's
training window, so a flag means "the model now sees inputs it was not fitted on".
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import polars as pl

from mt5lab.catalog import BY_NAME, FEATURE_NAMES

EPS = 1e-4
MIN_COUNT = 30
MODERATE = 0.1
DRIFT = 0.25


def _clean(values) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64).ravel()
    return a[np.isfinite(a)]


def bin_edges(reference, bins: int = 10) -> np.ndarray | None:
    """Inner bin edges from the reference quantiles; None means 'discrete: bin by value'."""
    ref = _clean(reference)
    distinct = np.unique(ref)
    if len(distinct) <= bins:
        return None
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    return edges


def proportions(values, edges: np.ndarray | None, categories: np.ndarray | None = None) -> np.ndarray:
    """Share of ``values`` per bin (``edges``: inner edges, right-closed bins) or per category.

    With categories, values that are none of them share one extra 'other' bin.
    """
    v = _clean(values)
    if edges is None:
        counts = np.array([np.sum(v == c) for c in categories] + [np.sum(~np.isin(v, categories))],
                          dtype=np.float64)
    else:
        counts = np.bincount(np.searchsorted(edges, v, side="left"), minlength=len(edges) + 1)
    return counts / max(len(v), 1)


LEVEL_SCALES = ("price", "volume")
_LEVEL_BAR_COLUMNS = ("open", "high", "low", "close", "tick_volume", "real_volume", "spread")


def kind(feature: str) -> str:
    """``"level"`` (price or volume units: drifts with the market) or ``"scale-free"``."""
    f = BY_NAME[feature]
    return "level" if f.scale in LEVEL_SCALES or f.name in _LEVEL_BAR_COLUMNS else "scale-free"


def ks_statistic(reference, current) -> float:
    """Two-sample Kolmogorov-Smirnov statistic ``max_x |F_ref(x) - F_cur(x)|`` (NaN when a window has
    fewer than ``MIN_COUNT`` values)."""
    ref, cur = np.sort(_clean(reference)), np.sort(_clean(current))
    if len(ref) < MIN_COUNT or len(cur) < MIN_COUNT:
        return float("nan")
    x = np.concatenate([ref, cur])
    f_ref = np.searchsorted(ref, x, side="right") / len(ref)
    f_cur = np.searchsorted(cur, x, side="right") / len(cur)
    return float(np.max(np.abs(f_ref - f_cur)))


def psi(reference, current, bins: int = 10, eps: float = EPS) -> float:
    """The PSI of ``current`` against ``reference``; NaN if either has < ``MIN_COUNT`` values or
    both hold one and the same value (a constant feature: nothing to compare)."""
    ref, cur = _clean(reference), _clean(current)
    if len(ref) < MIN_COUNT or len(cur) < MIN_COUNT:
        return float("nan")
    if ref.min() == ref.max() == cur.min() == cur.max():
        return float("nan")
    edges = bin_edges(ref, bins)
    cats = np.unique(ref) if edges is None else None
    p_ref = np.maximum(proportions(ref, edges, cats), eps)
    p_cur = np.maximum(proportions(cur, edges, cats), eps)
    return float(np.sum((p_cur - p_ref) * np.log(p_cur / p_ref)))


def status(value: float, moderate: float = MODERATE, drift: float = DRIFT) -> str:
    if not np.isfinite(value):
        return "insufficient data"
    return "drift" if value >= drift else "moderate" if value >= moderate else "stable"


def windows(frame: pl.DataFrame, reference_end: datetime | None = None, recent_bars: int = 250,
            reference_share: float = 0.6) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split one symbol's rows (sorted by ``time``) into the reference and the recent window.

    Reference: bars opening before ``reference_end`` (default: the first ``reference_share`` of the
    rows). Recent: the last ``recent_bars`` rows. They must not overlap: the recent window starts
    after the reference ends, else a ValueError says so; a ``reference_end`` at or before the first
    bar (an empty reference) is a ValueError too.
    """
    df = frame.sort("time")
    if reference_end is None:
        ref = df.head(int(df.height * reference_share))
    else:
        ref = df.filter(pl.col("time") < reference_end)
        if ref.height == 0:
            first = df["time"].min() if df.height else None
            raise ValueError(f"reference_end {reference_end:%Y-%m-%d %H:%M} UTC is not after the first bar "
                             f"({first:%Y-%m-%d %H:%M} UTC): the reference window would be empty"
                             if first is not None else "no bars: nothing to compare")
    cur = df.tail(recent_bars)
    if ref.height and cur.height and cur["time"].min() <= ref["time"].max():
        raise ValueError(f"the recent window ({cur['time'].min()} on) overlaps the reference window "
                         f"(to {ref['time'].max()}): lower recent_bars or move reference_end earlier")
    return ref, cur


def psi_table(reference: pl.DataFrame, current: pl.DataFrame, features=FEATURE_NAMES, bins: int = 10,
              moderate: float = MODERATE, drift: float = DRIFT) -> pd.DataFrame:
    """One row per feature, in catalog order: view, :func:`kind`, non-null counts, PSI, the KS
    statistic (the tie-breaker) and status."""
    rows = []
    for name in features:
        r, c = reference[name].cast(pl.Float64).to_numpy(), current[name].cast(pl.Float64).to_numpy()
        value = psi(r, c, bins)
        ks = ks_statistic(r, c) if np.isfinite(value) else float("nan")
        rows.append({"feature": name, "view": BY_NAME[name].view, "kind": kind(name),
                     "reference_n": int(np.isfinite(r).sum()), "recent_n": int(np.isfinite(c).sum()),
                     "psi": round(value, 4) if np.isfinite(value) else None,
                     "ks": round(ks, 4) if np.isfinite(ks) else None, "status": status(value, moderate, drift)})
    return pd.DataFrame(rows)


def ranked(table: pd.DataFrame, which: str, top: int | None = None) -> pd.DataFrame:
    """Features of one :func:`kind` (``"scale-free"`` or ``"level"``) with a PSI, most shifted first:
    by PSI, ties (a saturated PSI) broken by the KS statistic, then by name."""
    t = table[(table["kind"] == which) & table["psi"].notna()]
    t = t.sort_values(["psi", "ks", "feature"], ascending=[False, False, True], kind="mergesort")
    return t.head(top) if top else t


def drift_summary(table: pd.DataFrame) -> dict:
    """Counts per status and the flagged (drift) features, for the record."""
    counts = table["status"].value_counts().to_dict()
    return {
        "features": len(table),
        "drift": sorted(table.loc[table["status"] == "drift", "feature"]),
        "moderate": sorted(table.loc[table["status"] == "moderate", "feature"]),
        "insufficient": sorted(table.loc[table["status"] == "insufficient data", "feature"]),
        "counts": {k: int(v) for k, v in counts.items()},
        "psi": {r.feature: r.psi for r in table.itertuples()},
        "top_scale_free": list(ranked(table, "scale-free", 3)["feature"]),
        "top_level": list(ranked(table, "level", 3)["feature"]),
    }


def window_info(reference: pl.DataFrame, current: pl.DataFrame) -> pd.DataFrame:
    return pd.DataFrame([
        {"window": name, "bars": w.height, "first bar (UTC)": w["time"].min() if w.height else None,
         "last bar (UTC)": w["time"].max() if w.height else None}
        for name, w in (("reference", reference), ("recent", current))
    ])
