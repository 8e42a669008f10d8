"""Compute features from stored bars and upsert them into the offline store."""

from __future__ import annotations

import polars as pl

from mt5lab.features.compute import compute_features
from mt5lab.progress import bar
from mt5lab.storage import OfflineStore, WriteResult
from mt5lab.storage.base import now_utc


def feature_rows(bars: pl.DataFrame, timeframe: str, created=None) -> pl.DataFrame:
    """``compute_features`` plus the ``created_timestamp`` column the offline tables carry."""
    feats = compute_features(bars, timeframe)
    created = created or now_utc()
    return feats.insert_column(3, pl.lit(created, pl.Datetime("us", "UTC")).alias("created_timestamp"))


def build(store: OfflineStore, timeframes: list[str] | None = None,
          symbols: list[str] | None = None, progress: bool = True) -> dict[str, WriteResult]:
    """Full rebuild of features from bars, per timeframe. Unchanged rows are left untouched."""
    out = {}
    tfs = timeframes or store.timeframes()
    with store.lock():
        for tf in bar(tfs, "build", "timeframe", progress):
            bars = store.read_bars(tf, symbols)
            if bars.height == 0:
                continue
            out[tf] = store.write_features(tf, feature_rows(bars, tf))
    return out
