"""Checks and tables for a point-in-time training set (:func:`mt5lab.training.assemble.training_set`).

The look-ahead check (:func:`lookahead_check`) does not trust the join it checks. For a sample of
training rows ``(symbol, t)`` it recomputes all 42 features from scratch with
:func:`mt5lab.compute_features` on *only the bars that closed by* ``t`` and compares the last row
with the training row. Any feature that used a later bar differs. To show the check can fail, it
also compares against a recomputation that leaks one bar from after ``t``: that must differ.

Other tables: per-feature null share split into warm-up nulls (the decision's last closed bar is
within the feature's warm-up) and other nulls; the label distribution; the splits with their
purged rows.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import polars as pl

from mt5lab.catalog import FEATURE_NAMES, FEATURES, bar_duration, check_timeframe
from mt5lab.features.compute import compute_features
from mt5lab.training.assemble import decision_times
from mt5lab.training.labels import LABEL_END


def entities(store, symbols: list[str], timeframe: str, start: datetime | None = None,
             end: datetime | None = None, every: int = 1) -> pl.DataFrame:
    """Decision times at stored bar closes of ``symbols`` (default window: all stored closes)."""
    tf = check_timeframe(timeframe)
    bars = store.read_bars(tf, symbols)
    if bars.height == 0:
        raise ValueError(f"no {tf} bars for {', '.join(symbols)} in the store")
    lo = start or bars["time"].min() + bar_duration(tf)
    hi = end or bars["time"].max() + bar_duration(tf)
    return decision_times(symbols, lo, hi, tf, every, store=store)


def summary(ts: pl.DataFrame, labels: list[str]) -> dict:
    feats = [c for c in FEATURE_NAMES if c in ts.columns]
    return {
        "rows": ts.height,
        "symbols": sorted(ts["symbol"].unique().to_list()),
        "features": len(feats),
        "labels": [c for c in labels if c in ts.columns],
        "first_decision": ts["event_timestamp"].min(),
        "last_decision": ts["event_timestamp"].max(),
        "max_label_end": ts[LABEL_END].max() if LABEL_END in ts.columns else None,
        "null_share": round(ts.select(pl.col(feats).null_count()).sum_horizontal().item()
                            / max(ts.height * len(feats), 1), 4),
    }


def _same(a: np.ndarray, b: np.ndarray, rtol: float) -> np.ndarray:
    both_null = np.isnan(a) & np.isnan(b)
    with np.errstate(invalid="ignore"):
        close = np.abs(a - b) <= rtol * np.maximum(np.abs(a), np.abs(b))
    return both_null | close


def lookahead_check(ts: pl.DataFrame, store, timeframe: str, rows: int = 60, seed: int = 0,
                    rtol: float = 1e-9) -> tuple[dict, pd.DataFrame]:
    """Recompute features from bars closed by each sampled decision time; count mismatches.

    Returns ``(summary, per_row)``; ``summary["mismatches"]`` must be 0, and
    ``summary["leak_detected"]`` (mismatches against a one-bar leak) must be positive.
    """
    tf = check_timeframe(timeframe)
    step = bar_duration(tf)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(ts.height, size=min(rows, ts.height), replace=False))
    sample = ts[pick]
    bars = {s: store.read_bars(tf, [s]) for s in sample["symbol"].unique().to_list()}
    out, leaks = [], 0
    for r in sample.iter_rows(named=True):
        b = bars[r["symbol"]]
        n = int((b["time"] + step <= r["event_timestamp"]).sum())  # bars closed by t
        got = np.array([np.nan if r[f] is None else float(r[f]) for f in FEATURE_NAMES])
        if n == 0:
            want = np.full(len(FEATURE_NAMES), np.nan)
        else:
            want = compute_features(b.head(n), tf).select(FEATURE_NAMES).row(-1)
            want = np.array([np.nan if v is None else float(v) for v in want])
        bad = [f for f, ok in zip(FEATURE_NAMES, _same(got, want, rtol), strict=True) if not ok]
        if n < b.height:  # the same comparison with one bar from after t leaked in
            leak = compute_features(b.head(n + 1), tf).select(FEATURE_NAMES).row(-1)
            leak = np.array([np.nan if v is None else float(v) for v in leak])
            leaks += int(not _same(got, leak, rtol).all())
        out.append({"symbol": r["symbol"], "decision_time": r["event_timestamp"], "bars_closed": n,
                    "mismatches": len(bad), "mismatched": " ".join(bad)})
    table = pd.DataFrame(out)
    return {"rows_checked": len(table), "values_compared": len(table) * len(FEATURE_NAMES),
            "mismatches": int(table["mismatches"].sum()) if len(table) else 0,
            "leak_detected": leaks, "rtol": rtol}, table


def null_table(ts: pl.DataFrame, store, timeframe: str) -> pd.DataFrame:
    """Per feature: null share, the part explained by warm-up, and the rest (source gaps, zero
    denominators, no bar within ttl)."""
    tf = check_timeframe(timeframe)
    step = bar_duration(tf)
    syms = ts["symbol"].unique().to_list()
    closes = (store.read_bars(tf, syms).select("symbol", (pl.col("time") + step).alias("close_t"))
              .sort("symbol", "close_t").with_columns(pl.int_range(pl.len()).over("symbol").alias("k")))
    keys = ts.select("symbol", pl.col("event_timestamp").dt.cast_time_unit("us")).with_row_index("__r")
    pos = (keys.sort("event_timestamp")
           .join_asof(closes.with_columns(pl.col("close_t").dt.cast_time_unit("us")),
                      left_on="event_timestamp", right_on="close_t", by="symbol", strategy="backward",
                      check_sortedness=False)  # both sides sorted above
           .sort("__r")["k"].to_numpy())
    k = np.where(np.isnan(pos.astype(float)), -1, pos).astype(np.int64)
    rows = []
    for f in FEATURES:
        nulls = ts[f.name].is_null().to_numpy()
        warm = nulls & (k < f.warmup)
        rows.append({"feature": f.name, "view": f.view, "warmup_bars": f.warmup,
                     "null_share": round(nulls.mean(), 4), "warmup_share": round(warm.mean(), 4),
                     "other_null_share": round((nulls & ~warm).mean(), 4)})
    return pd.DataFrame(rows)


def label_table(ts: pl.DataFrame, labels: list[str]) -> pd.DataFrame:
    """Per label: count, nulls, moments and quantiles, and the shares of down / flat / up."""
    rows = []
    for name in labels:
        s = ts[name]
        v = s.drop_nulls().cast(pl.Float64)
        n = max(v.len(), 1)
        rows.append({"label": name, "rows": s.len(), "nulls": s.null_count(), "mean": v.mean(), "std": v.std(),
                     "p05": v.quantile(0.05), "median": v.median(), "p95": v.quantile(0.95),
                     "share down": round(int((v < 0).sum()) / n, 4), "share flat": round(int((v == 0).sum()) / n, 4),
                     "share up": round(int((v > 0).sum()) / n, 4)})
    return pd.DataFrame(rows)


def by_feature(table: pd.DataFrame, column: str) -> dict:
    """``{feature: value}`` of one column of :func:`null_table`, for the record."""
    return dict(zip(table["feature"], table[column], strict=True))


def split_table(ts: pl.DataFrame, rows: dict[str, np.ndarray]) -> pd.DataFrame:
    """Per split: rows, first/last decision, latest label end; plus the purged rows."""
    t = ts["event_timestamp"]
    end = ts[LABEL_END] if LABEL_END in ts.columns else t
    used = np.concatenate(list(rows.values())) if rows else np.array([], dtype=np.int64)
    out = [{"split": name, "rows": len(r), "first decision": t[r].min() if len(r) else None,
            "last decision": t[r].max() if len(r) else None,
            "last label end": end[r].max() if len(r) else None} for name, r in rows.items()]
    out.append({"split": "purged (label overlaps next split)", "rows": ts.height - len(np.unique(used)),
                "first decision": None, "last decision": None, "last label end": None})
    return pd.DataFrame(out)


def split_overlaps(ts: pl.DataFrame, rows: dict[str, np.ndarray]) -> int:
    """Rows whose label ends after the next split's first decision (must be 0)."""
    names = list(rows)
    t = ts["event_timestamp"].to_numpy()
    end = ts[LABEL_END].to_numpy() if LABEL_END in ts.columns else t
    bad = 0
    for a, b in zip(names[:-1], names[1:], strict=True):
        if len(rows[a]) and len(rows[b]):
            e = end[rows[a]]
            bad += int(np.sum(~np.isnat(e) & (e > t[rows[b]].min())))
    return bad
