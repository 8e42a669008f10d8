"""The look-ahead, prefix-invariance and Feast-equality properties on series stamped on real broker
clocks: an H1 and an H4 series of a NY+7 server and a D1 series of a New York (west of UTC) server.

The series are the real EURUSD H1 sample (UTC) re-stamped and re-aggregated the way an MT5 terminal
on that server builds them: times written as server wall times into an MT5 export, H4 bars summed
from H1 on the server's 4-hour grid, D1 bars on the server's days. Each export is then read back
through the real reader with ``server_tz``, ingested, built and joined. Expected open hours are
written out by hand (NY+7 is UTC+2 in US winter, UTC+3 in US summer; New York is UTC-5 / UTC-4).
"""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from mt5lab import catalog
from mt5lab.bars.clock import from_server, to_server
from mt5lab.bars.ingest import ingest_files
from mt5lab.bars.readers import read_bars
from mt5lab.bars.samples import load_sample
from mt5lab.bars.validate import validate_bars
from mt5lab.catalog import FEATURES
from mt5lab.features.build import build
from mt5lab.features.compute import compute_features
from mt5lab.training.assemble import training_set
from mt5lab.training.pit_feast import compare, feast_historical, file_store_drops
from tests.test_training import _allowed, lookahead_mismatches

SERIES = {"H1": "NY+7", "H4": "NY+7", "D1": "America/New_York"}
OPEN_HOURS = {"H1": set(range(24)), "H4": {1, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22}, "D1": {4, 5}}
"""UTC open hours: H4 on a NY+7 grid opens at 22, 2, 6, .. UTC in winter and 21, 1, 5, .. in summer;
a New York server's D1 bar at 05:00 UTC in winter, 04:00 UTC in summer."""


def _server_bars(tf: str) -> pl.DataFrame:
    """The EURUSD H1 sample aggregated into ``tf`` bars of its server clock (canonical, UTC)."""
    h1 = load_sample("EURUSD").with_columns(spread=pl.lit(0, pl.Int64))  # the export's <SPREAD> column
    tz = SERIES[tf]
    if tf == "H1":
        return h1
    wall = to_server(h1["time"], tz)
    bucket = wall.dt.truncate("4h" if tf == "H4" else "1d")
    agg = (h1.with_columns(_b=bucket).group_by("_b", maintain_order=True)
           .agg(pl.col("open").first(), pl.col("high").max(), pl.col("low").min(), pl.col("close").last(),
                pl.col("tick_volume").sum(), pl.col("spread").first(), pl.col("real_volume").sum()))
    return agg.select(pl.lit("EURUSD").alias("symbol"), pl.lit(tf).alias("timeframe"),
                      from_server(pl.col("_b"), tz).alias("time"), "open", "high", "low", "close",
                      "tick_volume", "spread", "real_volume").cast(catalog.BAR_SCHEMA)


def _export(bars: pl.DataFrame, tz: str, path: Path) -> Path:
    """Write ``bars`` as an MT5 terminal export with server wall times (what the terminal writes)."""
    wall = to_server(bars["time"], tz)
    lines = ["<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>"]
    for w, r in zip(wall.to_list(), bars.iter_rows(named=True), strict=True):
        lines.append(f"{w:%Y.%m.%d}\t{w:%H:%M:%S}\t{r['open']!r}\t{r['high']!r}\t{r['low']!r}\t{r['close']!r}\t"
                     f"{r['tick_volume']}\t{r['real_volume']}\t0")
    path.write_text("\n".join(lines) + "\n")
    return path


@cache
def _series(tf: str, root: str) -> tuple[pl.DataFrame, Path]:
    bars = _server_bars(tf)
    return bars, _export(bars, SERIES[tf], Path(root) / f"EURUSD_{tf}.csv")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("server_series"))


@pytest.mark.parametrize("tf", list(SERIES))
def test_reader_gives_the_server_grid_in_utc(root, tf):
    want, path = _series(tf, root)
    got = read_bars(path, symbol="EURUSD", timeframe=tf, server_tz=SERIES[tf])
    assert got["time"].to_list() == want["time"].to_list()
    assert set(got["time"].dt.hour().unique().to_list()) <= OPEN_HOURS[tf]
    assert got["time"].dt.hour().n_unique() == len(OPEN_HOURS[tf])  # both DST regimes occur
    report = validate_bars(got, server_tz=SERIES[tf], calendar="fx")
    assert report.rows == want.height


@cache
def _store(tf: str, root: str):
    from mt5lab.storage.local import LocalStore

    bars, path = _series(tf, root)
    store = LocalStore(Path(root) / f"store-{tf}")
    ingest_files(store, [path], symbol="EURUSD", timeframe=tf, server_tz=SERIES[tf], progress=False)
    build(store, [tf], progress=False)
    return store


@pytest.mark.parametrize("tf", list(SERIES))
def test_no_decision_sees_a_bar_before_its_close(root, tf):
    """Each decision's row equals ``compute_features`` on the bars closed by then (no later bar)."""
    bars, _ = _series(tf, root)
    step = catalog.TIMEFRAMES[tf]
    rng = np.random.default_rng(11)
    closes = (bars["time"] + step).to_list()
    times = []
    for _ in range(80):
        c = closes[int(rng.integers(catalog.MAX_WARMUP // (4 if tf == "H1" else 8), len(closes)))]
        times += [c, c - timedelta(microseconds=1), c + timedelta(minutes=int(rng.integers(1, 600)))]
    edf = pl.DataFrame({"symbol": "EURUSD", "event_timestamp": times},
                       schema_overrides={"event_timestamp": pl.Datetime("us", "UTC")})
    got = training_set(edf, timeframe=tf, to="polars", store=_store(tf, root), progress=False)
    mismatches, published, _ = lookahead_mismatches(got, bars, times, tf)
    assert published > 1000
    assert mismatches == [], mismatches[:5]


@pytest.mark.parametrize("tf", list(SERIES))
@pytest.mark.parametrize("start", [1, 37, 58])
def test_prefix_invariance(root, tf, start):
    """A value published from a history cut at ``start`` equals the full history's (warm-up rule)."""
    bars, _ = _series(tf, root)
    full, cut = compute_features(bars, tf), compute_features(bars[start:], tf)
    for f in FEATURES:
        if f.cumulative:
            continue
        a, b = cut[f.name].cast(pl.Float64).to_numpy(), full[f.name].cast(pl.Float64).to_numpy()[start:]
        pub = np.flatnonzero(~np.isnan(a))
        assert not np.isnan(b[pub]).any(), f.name
        for i in pub:
            assert abs(a[i] - b[i]) <= _allowed(f, bars[: start + i + 1], b[i]), (f.name, i)


@pytest.mark.parametrize("tf", ["H4", "D1"])
def test_equals_feast_get_historical_features(root, tf, tmp_path, monkeypatch):
    from mt5lab.feast_repo import store as store_mod
    from mt5lab.feast_repo.store import apply
    from mt5lab.storage import open_store

    monkeypatch.setenv("MT5LAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("MT5LAB_PROFILE", raising=False)
    store_mod._STORES.clear()
    try:
        bars, path = _series(tf, root)
        store = open_store("local")
        ingest_files(store, [path], symbol="EURUSD", timeframe=tf, server_tz=SERIES[tf], progress=False)
        build(store, [tf], progress=False)
        apply("local", tf)
        step = catalog.TIMEFRAMES[tf]
        rng = np.random.default_rng(5)
        closes = (bars["time"] + step).to_list()
        times = [closes[int(rng.integers(len(closes)))] + timedelta(minutes=int(rng.integers(-300, 300)))
                 for _ in range(150)] + [closes[-1] + catalog.ttl(tf) + timedelta(hours=1)]
        edf = pd.DataFrame({"symbol": "EURUSD", "event_timestamp": pd.to_datetime(times, utc=True)})
        edf["row_id"] = np.arange(len(edf), dtype=np.int64)
        refs = ["ohlcv_features:close", "technical_indicators_ma:sma_20", "price_action:hl_range"]
        ours = training_set(edf, refs, timeframe=tf, progress=False)
        feast = feast_historical(edf, refs, profile="local", timeframe=tf)
        cols = [c for c in ours.columns if c not in edf.columns]
        assert file_store_drops(ours, feast, {"EURUSD"}, cols) == []
        kept = edf[edf["row_id"].isin(feast["row_id"])].reset_index(drop=True)
        assert len(kept) > 100
        ours = training_set(kept, refs, timeframe=tf, progress=False)
        assert compare(ours, feast) == []
    finally:
        store_mod._STORES.clear()
