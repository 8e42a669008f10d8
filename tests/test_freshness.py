"""Freshness: calendar-aware staleness per view and symbol, with an explicit ``now`` (no sleeping).

One synthetic FX week of H1 bars (Sunday 22:00 UTC to the Friday 22:00 UTC close, winter time) for
EURUSD, written online by ``update``; GBPUSD gets the same bars offline only (never materialized).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import polars as pl
import pytest

from mt5lab.catalog import VIEW_NAMES

FRI_CLOSE = datetime(2024, 1, 5, 22, tzinfo=UTC)  # 17:00 New York: the FX week's last close


def _week(symbol: str) -> pl.DataFrame:
    opens = [datetime(2023, 12, 31, 22, tzinfo=UTC) + timedelta(hours=h) for h in range(120)]
    assert opens[-1] + timedelta(hours=1) == FRI_CLOSE
    x = np.arange(120)
    close = 1.10 + 0.002 * np.sin(x / 7.0)
    open_ = np.concatenate([[1.10], close[:-1]])
    return pl.DataFrame({
        "symbol": symbol, "timeframe": "H1", "time": opens, "open": open_,
        "high": np.maximum(open_, close) + 0.0004, "low": np.minimum(open_, close) - 0.0004,
        "close": close, "tick_volume": 1000 + (x * 37) % 500, "spread": 12, "real_volume": 0,
    }).with_columns(pl.col("time").dt.cast_time_unit("us"))


@pytest.fixture(scope="module")
def fx_store(tmp_path_factory):
    from mt5lab.feast_repo import store
    from mt5lab.feast_repo.store import apply
    from mt5lab.online import reader as online_reader
    from mt5lab.online.update import update

    mp = pytest.MonkeyPatch()
    mp.setenv("MT5LAB_DATA_DIR", str(tmp_path_factory.mktemp("fresh") / "data"))
    mp.delenv("MT5LAB_PROFILE", raising=False)
    store._STORES.clear()
    apply(None, "H1")
    update(_week("EURUSD"), calendar="fx")
    update(_week("GBPUSD"), calendar="fx", online=False)  # offline only: never materialized
    yield
    store._STORES.clear()
    online_reader.clear_cache()
    mp.undo()


def _status(now: datetime, symbols=("EURUSD",)) -> dict:
    from mt5lab import freshness

    df = freshness(list(symbols), timeframes="H1", now=now)
    assert len(df) == len(symbols) * len(VIEW_NAMES)
    out = {}
    for sym, g in df.groupby("symbol"):
        assert g["status"].nunique() == 1, g  # all six views were written together
        out[sym] = g.iloc[0].to_dict()
    return out


def test_weekend_is_not_stale(fx_store):
    for now in (datetime(2024, 1, 6, 12, tzinfo=UTC),  # Saturday noon
                datetime(2024, 1, 7, 21, 59, tzinfo=UTC),  # Sunday, a minute before the open
                datetime(2024, 1, 7, 22, 10, tzinfo=UTC)):  # first bar still within its grace
        row = _status(now)["EURUSD"]
        assert row["status"] == "fresh", now
        assert row["expected_close"] == FRI_CLOSE and row["bars_behind"] == 0
        assert row["age"] == now - FRI_CLOSE


def test_missed_bars_are_stale(fx_store):
    row = _status(datetime(2024, 1, 7, 23, 20, tzinfo=UTC))["EURUSD"]  # Sunday 22:00-23:00 missing
    assert (row["status"], row["bars_behind"]) == ("stale", 1)
    row = _status(datetime(2024, 1, 8, 0, 30, tzinfo=UTC))["EURUSD"]
    assert (row["status"], row["bars_behind"]) == ("stale", 2)
    assert row["expected_close"] == datetime(2024, 1, 8, tzinfo=UTC)


def test_expired_ttl_and_future(fx_store):
    # The H1 views' ttl: the longest normal closure of any calendar (Xetra's Christmas, 5 days) + 1 h.
    row = _status(FRI_CLOSE + timedelta(days=5, hours=1))["EURUSD"]  # exactly ttl: stale, not expired
    assert row["status"] == "stale"
    row = _status(FRI_CLOSE + timedelta(days=5, hours=1, seconds=1))["EURUSD"]
    assert row["status"] == "expired"
    row = _status(FRI_CLOSE - timedelta(minutes=30))["EURUSD"]  # the last bar closes after now
    assert row["status"] == "future"


def test_never_materialized_is_missing(fx_store):
    from mt5lab import freshness

    rows = _status(datetime(2024, 1, 6, 12, tzinfo=UTC), symbols=("EURUSD", "GBPUSD", "XAUUSD"))
    assert {s: r["status"] for s, r in rows.items()} == {
        "EURUSD": "fresh", "GBPUSD": "missing", "XAUUSD": "missing"}
    assert pd.isna(rows["GBPUSD"]["event_timestamp"]) and pd.isna(rows["GBPUSD"]["age"])
    # Default symbols: every symbol with offline features, so GBPUSD is checked without naming it.
    df = freshness(timeframes=["H1"], now=datetime(2024, 1, 6, 12, tzinfo=UTC))
    assert sorted(df["symbol"].unique()) == ["EURUSD", "GBPUSD"]


def test_cli_exit_codes(fx_store):
    from click.testing import CliRunner

    from mt5lab.cli import cli

    def run(*args):
        return CliRunner().invoke(cli, ["check", "freshness", "--timeframe", "H1", *args])

    ok = run("--symbol", "EURUSD", "--now", "2024-01-06T12:00:00+00:00")
    assert ok.exit_code == 0, ok.output
    assert ok.output.count("fresh") == len(VIEW_NAMES)
    stale = run("--symbol", "EURUSD", "--now", "2024-01-08T00:30:00+00:00")
    assert stale.exit_code == 1 and stale.output.count("stale") >= len(VIEW_NAMES), stale.output
    missing = run("--now", "2024-01-06T12:00:00+00:00")  # GBPUSD was never materialized
    assert missing.exit_code == 1 and "missing" in missing.output
    graced = run("--symbol", "EURUSD", "--now", "2024-01-07T23:20:00+00:00", "--grace", "25m")
    assert graced.exit_code == 0, graced.output
    assert run("--now", "2024-01-06T12:00:00").exit_code == 2  # a naive time is a usage error
