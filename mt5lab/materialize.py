"""Offline latest -> online store, through Feast's public write path.

Feast's ``materialize`` scans whole windows of the offline store and converts every row. mt5lab
knows the answer it needs: the latest feature row per symbol. It reads those (``pull latest``),
compares them with what the online store already holds and writes only the rows that differ, so a
run with no new bars writes nothing, and a run after the online store lost data heals it. Each
write also records a Feast materialization interval, so ``feast`` tooling sees the same state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import polars as pl

from mt5lab.catalog import FEATURES, VIEWS, check_timeframe
from mt5lab.progress import bar
from mt5lab.storage import OfflineStore
from mt5lab.store import feature_store


@dataclass(frozen=True)
class MaterializeResult:
    timeframe: str
    symbols: int
    written: int  # symbols whose online rows were (re)written
    latest_event: object


def _online_frame(fs, symbols: list[str]) -> pd.DataFrame:
    service = fs.get_feature_service("mt5_v1")
    rows = [{"symbol": s} for s in symbols]
    return fs.get_online_features(features=service, entity_rows=rows).to_df()


def _differs(offline: pl.DataFrame, online: pd.DataFrame) -> np.ndarray:
    """Per symbol: does the online row differ from the offline latest row in any feature?"""
    on = pl.from_pandas(online).select(["symbol", *[f.name for f in FEATURES]])
    j = offline.select(["symbol", *[f.name for f in FEATURES]]).join(on, on="symbol", how="left",
                                                                     suffix="__on")
    diff = np.zeros(j.height, dtype=bool)
    for f in FEATURES:
        a = j[f.name]
        b = j[f"{f.name}__on"].cast(a.dtype, strict=False)
        same = (a == b).fill_null(False) | (a.is_null() & b.is_null())
        diff |= ~same.to_numpy()
    return diff


def materialize(store: OfflineStore, profile=None, timeframe: str = "D1",
                symbols: list[str] | None = None, full: bool = False,
                progress: bool = True) -> MaterializeResult:
    """Make the online store hold each symbol's latest offline feature row.

    ``full=False`` (the default, "since last time") writes only symbols whose online row differs
    from the offline latest one; ``full=True`` rewrites all of them.
    """
    tf = check_timeframe(timeframe)
    fs = feature_store(profile, tf)
    with store.lock():
        latest = store.latest_features(tf, symbols)
        if latest.height == 0:
            return MaterializeResult(tf, 0, 0, None)
        todo = latest
        if not full:
            todo = latest.filter(pl.Series(_differs(latest, _online_frame(fs, latest["symbol"].to_list()))))
        if todo.height:
            pdf = todo.to_pandas(use_pyarrow_extension_array=False)
            for v in bar(VIEWS, f"materialize {tf}", "view", progress):
                cols = ["symbol", "event_timestamp", "created_timestamp", *[f.name for f in v.features]]
                fs.write_to_online_store(v.name, pdf[cols])
                fv = fs.get_feature_view(v.name)
                fs.registry.apply_materialization(fv, fs.project, todo["event_timestamp"].min(),
                                                  todo["event_timestamp"].max())
        return MaterializeResult(tf, latest.height, todo.height, latest["event_timestamp"].max())
