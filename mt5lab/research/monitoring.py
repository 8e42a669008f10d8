"""Feature drift: the population stability index (PSI) of every feature, reference vs recent window.

    PSI = sum over bins of (p_cur - p_ref) * ln(p_cur / p_ref)

Bins come from the *reference* window only: its deciles for a continuous feature (so each holds
~10% of the reference), or its distinct values for a discrete one (``cdl_doji``: 0/100). Values of
the recent window outside the reference range fall into the open-ended first or last bin. Empty bins
are floored at :data:`EPS` so the log stays finite. Conventional reading: below 0.1 stable, 0.1 to
0.25 a moderate shift, 0.25 and above drift (:data:`MODERATE`, :data:`DRIFT`).

Nulls (warm-up, zero denominators) are dropped before binning; a window with fewer than
:data:`MIN_COUNT` values gives ``insufficient data`` rather than a number. A feature that is constant
in both windows has PSI 0.

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


def psi(reference, current, bins: int = 10, eps: float = EPS) -> float:
    """The PSI of ``current`` against ``reference`` (NaN if either has < ``MIN_COUNT`` values)."""
    ref, cur = _clean(reference), _clean(current)
    if len(ref) < MIN_COUNT or len(cur) < MIN_COUNT:
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
    after the reference ends, else a ValueError says so.
    """
    df = frame.sort("time")
    if reference_end is None:
        ref = df.head(int(df.height * reference_share))
    else:
        ref = df.filter(pl.col("time") < reference_end)
    cur = df.tail(recent_bars)
    if ref.height and cur.height and cur["time"].min() <= ref["time"].max():
        raise ValueError(f"the recent window ({cur['time'].min()} on) overlaps the reference window "
                         f"(to {ref['time'].max()}): lower recent_bars or move reference_end earlier")
    return ref, cur


def psi_table(reference: pl.DataFrame, current: pl.DataFrame, features=FEATURE_NAMES, bins: int = 10,
              moderate: float = MODERATE, drift: float = DRIFT) -> pd.DataFrame:
    """One row per feature: view, non-null counts, PSI and status, in catalog order."""
    rows = []
    for name in features:
        r, c = reference[name].cast(pl.Float64).to_numpy(), current[name].cast(pl.Float64).to_numpy()
        value = psi(r, c, bins)
        rows.append({"feature": name, "view": BY_NAME[name].view, "reference_n": int(np.isfinite(r).sum()),
                     "recent_n": int(np.isfinite(c).sum()), "psi": round(value, 4) if np.isfinite(value) else None,
                     "status": status(value, moderate, drift)})
    return pd.DataFrame(rows)


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
    }


def window_info(reference: pl.DataFrame, current: pl.DataFrame) -> pd.DataFrame:
    return pd.DataFrame([
        {"window": name, "bars": w.height, "first bar (UTC)": w["time"].min() if w.height else None,
         "last bar (UTC)": w["time"].max() if w.height else None}
        for name, w in (("reference", reference), ("recent", current))
    ])
