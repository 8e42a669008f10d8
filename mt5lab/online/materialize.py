"""Offline latest -> online store, through Feast's public write path.

Feast's ``materialize`` scans whole windows of the offline store and converts every row. mt5lab
knows the answer it needs: the latest feature row per symbol. It reads those (``pull latest``: one
``DISTINCT ON`` query in PostgreSQL), compares them with what the online store already holds and
writes only the rows that differ, so a run with no new bars writes nothing ("since last time"), and
a run after the online store lost data heals it. Writes go through Feast's ``OnlineStore``
interface (:class:`mt5lab.online.tables.OnlineTables`), so Feast reads them back. Each write also
records a Feast materialization interval, so ``feast`` tooling sees the same state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from mt5lab.catalog import FEATURE_SERVICE, FEATURES, check_timeframe
from mt5lab.config import resolve
from mt5lab.errors import StoreError
from mt5lab.feast_repo.store import feature_store
from mt5lab.online.tables import OnlineTables, check_online, to_python
from mt5lab.progress import bar
from mt5lab.storage import OfflineStore


@dataclass(frozen=True)
class MaterializeResult:
    timeframe: str
    symbols: int
    written: int  # symbols whose online rows were (re)written
    latest_event: object


def _online_latest(tables, symbols: list[str]) -> pl.DataFrame:
    """What the online store holds per symbol: the features and, per view, the event timestamp."""
    keys = tables.keys(symbols)
    cols: dict[str, list] = {"symbol": symbols}
    for i, (fv, feats) in enumerate(tables.views):
        rows = tables.read_view(i, keys)
        cols[f"__ts_{fv.name}"] = [ts for ts, _ in rows]
        for f in feats:
            cols[f] = [None if vals is None else to_python(vals[f]) for _, vals in rows]
    schema = {"symbol": pl.String} | {f"__ts_{fv.name}": pl.Datetime("us", "UTC") for fv, _ in tables.views}
    schema |= {f.name: (pl.Float64 if f.dtype == "Float64" else pl.Int64) for f in FEATURES}
    return pl.DataFrame(cols, schema={c: schema[c] for c in cols}, strict=False)


def _differs(offline: pl.DataFrame, online: pl.DataFrame) -> np.ndarray:
    """Per symbol: does the online row differ from the offline latest row (any feature, or any
    view's event timestamp)?"""
    ts_cols = [c for c in online.columns if c.startswith("__ts_")]
    j = offline.select(["symbol", "event_timestamp", *[f.name for f in FEATURES]]).join(
        online, on="symbol", how="left", suffix="__on")
    diff = np.zeros(j.height, dtype=bool)
    pairs = [(f.name, f"{f.name}__on") for f in FEATURES] + [("event_timestamp", c) for c in ts_cols]
    for a_name, b_name in pairs:
        a = j[a_name]
        b = j[b_name].cast(a.dtype, strict=False)
        same = (a == b).fill_null(False) | (a.is_null() & b.is_null())
        diff |= ~same.to_numpy()
    return diff


def _service_views(fs, timeframe: str) -> list:
    """``(FeatureView, [feature names])`` of the service, from the registry cache."""
    try:
        svc = fs.registry.get_feature_service(FEATURE_SERVICE, fs.project, allow_cache=True)
        return [(fs.registry.get_feature_view(p.name, fs.project, allow_cache=True), [f.name for f in p.features])
                for p in svc.feature_view_projections]
    except Exception as exc:  # FeatureServiceNotFound, FeatureViewNotFound
        raise StoreError(f"feature registry of {timeframe} has no {FEATURE_SERVICE!r}: run "
                         f"`mt5lab apply --timeframe {timeframe}` first ({type(exc).__name__})") from None


def _redis(fs, views, latest: pl.DataFrame, full: bool, progress: bool) -> pl.DataFrame:
    """Redis: compare and write Feast's exact bytes, one pipeline each (:mod:`mt5lab.online.redis_rows`)."""
    from mt5lab.online.redis_rows import RedisRows

    rr = RedisRows(fs, views)
    done = []
    for chunk in bar(list(latest.iter_slices(5_000)), "materialize", "batch", progress):
        keys, values = rr.encode(chunk)
        mask = np.ones(len(keys), bool) if full else rr.differing(keys, values)
        rr.write([k for k, m in zip(keys, mask, strict=True) if m],
                 [v for v, m in zip(values, mask, strict=True) if m])
        done.append(chunk.filter(pl.Series(mask)))
    return pl.concat(done)


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
        if getattr(fs.config.online_store, "type", None) == "redis":
            check_online(resolve(profile))  # a refused password: one clear line, no retries
            views = _service_views(fs, tf)
            todo = _redis(fs, views, latest, full, progress)
        else:
            # Feast's own OnlineStore write path (same keys and encodings), without its per-call
            # registry lookups.
            tables = OnlineTables(profile, tf)
            views = tables.views
            todo = latest
            if not full:
                todo = latest.filter(pl.Series(_differs(latest, _online_latest(tables, latest["symbol"].to_list()))))
            for chunk in bar(list(todo.iter_slices(5_000)), f"materialize {tf}", "batch", progress):
                tables.write_latest(chunk)
        if todo.height:
            for fv, _ in views:
                fs.registry.apply_materialization(fv, fs.project, todo["event_timestamp"].min(),
                                                  todo["event_timestamp"].max())
        return MaterializeResult(tf, latest.height, todo.height, latest["event_timestamp"].max())
