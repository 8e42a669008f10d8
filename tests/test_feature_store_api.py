"""``mt5lab.feature_store``, the public "secure store setup": Feast's own ``FeatureStore``, ready.

Feast's SDK calls, exactly as documented (the example in the function's docstring is executed here),
answer from the profile's stores: ``get_online_features`` equals each symbol's newest offline row and
``get_historical_features`` equals the newest offline row at or before each entity time (none past
the view's ttl or before the first bar: null on PostgreSQL, a dropped row on Feast's file store).
Local profile on the shared demo store; the team profile on a throwaway PostgreSQL database and a
Redis with a password (services).
"""

from __future__ import annotations

import math
import textwrap
from datetime import timedelta

import pandas as pd
import polars as pl
import pytest
from feast import FeatureStore

import mt5lab
from mt5lab.catalog import FEATURE_NAMES, FEATURE_SERVICE, VIEW_NAMES, ttl
from mt5lab.config import project_for
from mt5lab.storage import open_store


def _same(got, want) -> bool:
    if want is None or (isinstance(want, float) and math.isnan(want)):
        return got is None or (isinstance(got, float) and math.isnan(got)) or got is pd.NA
    return got == pytest.approx(want, rel=1e-12, abs=1e-12)


def _utc(t) -> pd.Timestamp:
    t = pd.Timestamp(t)
    return t.tz_localize("UTC") if t.tz is None else t.tz_convert("UTC")  # Postgres: naive UTC


def expected_asof(offline: pl.DataFrame, entity_df: pd.DataFrame, timeframe: str) -> list[dict]:
    """Per entity row: the newest offline row with ``event_timestamp <= t`` within the ttl, else nulls."""
    rows = []
    for symbol, t in zip(entity_df["symbol"], entity_df["event_timestamp"], strict=True):
        t = t.to_pydatetime()
        hist = offline.filter((pl.col("symbol") == symbol) & (pl.col("event_timestamp") <= t))
        last = hist.sort("event_timestamp").tail(1).to_dicts()
        ok = bool(last) and t - last[0]["event_timestamp"] <= ttl(timeframe)
        rows.append({n: last[0][n] if ok else None for n in FEATURE_NAMES})
    return rows


def check_online(fs: FeatureStore, profile, timeframe: str, symbols: list[str]) -> None:
    service = fs.get_feature_service(FEATURE_SERVICE)
    got = fs.get_online_features(features=service, entity_rows=[{"symbol": s} for s in symbols]).to_dict()
    latest = {r["symbol"]: r for r in open_store(profile).latest_features(timeframe, symbols).to_dicts()}
    assert got["symbol"] == symbols
    for i, s in enumerate(symbols):
        bad = [n for n in FEATURE_NAMES if not _same(got[n][i], latest[s][n])]
        assert bad == [], (timeframe, s, bad[:5])


def check_historical(fs: FeatureStore, profile, timeframe: str, entity_df: pd.DataFrame) -> list[bool]:
    """Feast's answer per entity row equals the offline as-of row; returns which rows had one. A row
    without one is all nulls, or missing on the file store (Feast's dask join drops it: see README,
    *Training sets*)."""
    service = fs.get_feature_service(FEATURE_SERVICE)
    got = fs.get_historical_features(entity_df=entity_df, features=service).to_df()
    by_key = {(r["symbol"], _utc(r["event_timestamp"])): r for r in got.to_dict("records")}
    assert len(by_key) == len(got)
    offline = open_store(profile).read_features(timeframe, sorted(set(entity_df["symbol"])))
    want = expected_asof(offline, entity_df, timeframe)
    found = []
    keys = zip(entity_df["symbol"], map(_utc, entity_df["event_timestamp"]), strict=True)
    for key, row in zip(keys, want, strict=True):
        has = row["close"] is not None
        found.append(has)
        if key not in by_key:
            assert not has and fs.config.offline_store.type in ("file", "dask"), key
            continue
        bad = [n for n in FEATURE_NAMES if not _same(by_key[key][n], row[n])]
        assert bad == [], (timeframe, key, bad[:5])
    assert len(got) >= sum(found)
    return found


def test_documented_example_runs_on_the_local_store(demo_store):
    """The docstring's example, executed as written, gives Feast's answers from mt5lab's store."""
    doc = mt5lab.feature_store.__doc__
    code = textwrap.dedent(doc.split("Example (after ``make demo``)::", 1)[1].split("\n\n    Args:", 1)[0])
    ns: dict = {}
    exec(compile(code, "feature_store.__doc__", "exec"), ns)  # our own docstring
    fs, fs_h1 = ns["fs"], ns["fs_h1"]
    assert isinstance(fs, FeatureStore) and isinstance(fs_h1, FeatureStore)
    assert (fs.project, fs_h1.project) == (project_for("mt5lab", "D1"), project_for("mt5lab", "H1"))
    assert fs is mt5lab.feature_store() and fs_h1 is mt5lab.feature_store(None, "h1")
    assert set(FEATURE_NAMES) <= set(ns["online"]) and ns["online"]["symbol"] == ["GOOG"]
    train = ns["train"].sort_values("event_timestamp").reset_index(drop=True)
    # 2013-01-02 12:00 UTC sees the 31 December bar (closed 1 January 00:00), not 2 January's.
    assert train["close"].tolist() == pytest.approx([707.38, 806.19])


def test_feast_sdk_answers_equal_the_offline_store(demo_store):
    fs, fs_h1 = mt5lab.feature_store(), mt5lab.feature_store(timeframe="H1")
    assert sorted(v.name for v in fs.list_feature_views()) == sorted(VIEW_NAMES)
    assert {s.name for s in fs_h1.list_feature_services()} == {FEATURE_SERVICE}
    check_online(fs, None, "D1", ["GOOG"])
    check_online(fs_h1, None, "H1", ["EURUSD"])
    d1 = pd.DataFrame({"symbol": ["GOOG"] * 4, "event_timestamp": pd.to_datetime(
        ["2004-08-01 00:00", "2008-10-10 15:30", "2013-03-02 00:00", "2013-04-01 00:00"], utc=True)})
    assert check_historical(fs, None, "D1", d1) == [False, True, True, False]  # before 1st bar; past ttl
    h1 = pd.DataFrame({"symbol": ["EURUSD"] * 4, "event_timestamp": pd.to_datetime(
        ["2017-04-19 00:00", "2017-06-03 12:00", "2017-11-15 10:00", "2018-02-07 16:00"], utc=True)})
    assert check_historical(fs_h1, None, "H1", h1) == [False, True, True, True]  # Saturday: Friday's bar


@pytest.mark.slow
@pytest.mark.services
def test_feast_sdk_on_the_team_profile(tmp_path, monkeypatch):
    from mt5lab.bars.ingest import write
    from mt5lab.bars.samples import load_sample
    from mt5lab.feast_repo import store as store_mod
    from mt5lab.feast_repo.store import apply
    from mt5lab.features.build import build
    from mt5lab.online.materialize import materialize
    from mt5lab.testing.sandbox import postgres_profile_env
    from tests.conftest import require_service

    require_service("PostgreSQL", "127.0.0.1", 5432)
    monkeypatch.setenv("MT5LAB_DATA_DIR", str(tmp_path / "data"))
    store_mod._STORES.clear()
    with postgres_profile_env():
        try:
            st = open_store("postgres")
            write(st, load_sample("GOOG").head(600), [])
            build(st, progress=False)
            apply("postgres", "D1")
            materialize(st, "postgres", "D1", progress=False)
            fs = mt5lab.feature_store("postgres")
            assert isinstance(fs, FeatureStore) and fs.config.online_store.type == "redis"
            assert fs.config.registry.registry_type == "sql" and fs.project == "mt5lab"
            check_online(fs, "postgres", "D1", ["GOOG"])
            times = st.read_features("D1", ["GOOG"])["event_timestamp"]
            entity_df = pd.DataFrame({"symbol": ["GOOG"] * 3, "event_timestamp": pd.to_datetime(
                [times[0] - timedelta(days=1), times[300] + timedelta(hours=5), times[-1]], utc=True)})
            assert check_historical(fs, "postgres", "D1", entity_df) == [False, True, True]
        finally:
            store_mod._STORES.clear()
