"""The live feed (``mt5lab follow``), run for real on replayed files: the stores it leaves equal a batch
ingest + build + materialize of the same file, after a plain replay, after kill -9 at random points
and restarts, and after a 50-bar catch-up; a bad bar stalls only its symbol; SIGTERM stops it between
bars. The MetaTrader 5 adapter is tested on recorded MqlRates arrays (the documented dtype, the real
``copy_rates`` values of a NY+7 broker) behind a minimal fake of the terminal API (the terminal cannot
run here).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import types
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from mt5lab.bars.samples import load_sample
from mt5lab.catalog import FEATURES
from tests.conftest import reset_caches
from tests.test_update import assert_matches_rebuild

RATES = "/work/shared/cases/broker/EURUSD_H1_rates_int_s.parquet"
N = 60  # H1 bars per symbol: two and a half days
SYMBOLS = ["EURUSD", "GBPUSD"]


def _bars(n: int = N) -> pl.DataFrame:
    eur = load_sample("EURUSD").head(n)
    gbp = eur.with_columns(pl.lit("GBPUSD").alias("symbol"),
                           *(pl.col(c) * 1.17 for c in ("open", "high", "low", "close")))
    return pl.concat([eur, gbp]).drop("timeframe")


@pytest.fixture(scope="module")
def replay_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("replay") / "two.parquet"
    _bars().write_parquet(path)
    return path


@pytest.fixture(scope="module")
def batch(replay_file, tmp_path_factory):
    return batch_reference(replay_file, tmp_path_factory.mktemp("batch") / "data")


def batch_reference(replay_file, data_dir) -> dict:
    """The reference: batch ingest + build + apply + materialize of the replay file (local profile
    in ``data_dir``): stored bars and features, and the online rows."""
    from mt5lab.bars.ingest import ingest_files
    from mt5lab.feast_repo.store import apply
    from mt5lab.features.build import build
    from mt5lab.online.materialize import materialize
    from mt5lab.storage import open_store

    mp = pytest.MonkeyPatch()
    mp.setenv("MT5LAB_DATA_DIR", str(data_dir))
    mp.delenv("MT5LAB_PROFILE", raising=False)
    reset_caches()
    store = open_store()
    ingest_files(store, [replay_file], symbol=None, timeframe="H1", progress=False)
    build(store, ["H1"], progress=False)
    apply(None, "H1")
    materialize(store, None, "H1", full=True, progress=False)
    ref = {"features": store.read_features("H1").sort("symbol", "time"),
           "bars": store.read_bars("H1").sort("symbol", "time"), "online": _online(), "dir": data_dir}
    reset_caches()
    mp.undo()
    return ref


def _now() -> datetime:
    """Read time: an hour after the last bar's close (fresh on the H1 ttl)."""
    return _bars()["time"].max() + timedelta(hours=2)


def _online():
    from mt5lab.online.reader import OnlineReader

    rows = OnlineReader(None, "H1").read(SYMBOLS, now=_now(), keep_expired=True)
    return rows


@pytest.fixture(scope="module")
def model(batch, tmp_path_factory):
    """One small LightGBM model (20 trees), trained once on the batch store's point-in-time training
    set, and its online predictions on that store: the reference a follow-built store must match."""
    from mt5lab.model import artifact
    from mt5lab.model.predict import predict_online
    from mt5lab.storage import open_store
    from mt5lab.training.assemble import decision_times, training_set

    mp = pytest.MonkeyPatch()
    mp.setenv("MT5LAB_DATA_DIR", str(batch["dir"]))
    mp.delenv("MT5LAB_PROFILE", raising=False)
    reset_caches()
    st = open_store()
    t = _bars()["time"]
    keys = decision_times(SYMBOLS, t.min(), t.max() + timedelta(hours=1), "H1", store=st)
    ts = training_set(keys, "mt5_v1", timeframe="H1", labels=["fwd_return_5"], store=st, progress=False)
    out = tmp_path_factory.mktemp("model") / "m"
    saved = artifact.train(ts, "fwd_return_5", timeframe="H1", out=out,
                           params={"n_estimators": 20, "min_child_samples": 5})
    # The model must tell bars apart, or equal predictions would prove nothing.
    assert len(set(saved.predict_frame(ts).round(12))) > 10
    preds = predict_online(str(out), SYMBOLS, now=_now())
    reset_caches()
    mp.undo()
    assert [p.status for p in preds] == ["ok", "ok"], [p.reason for p in preds]
    return {"dir": str(out), "predictions": preds}


def assert_equals_batch(ref) -> None:
    from mt5lab.storage import open_store

    store = open_store()
    got = store.read_features("H1").sort("symbol", "time")
    assert store.read_bars("H1").sort("symbol", "time").equals(ref["bars"])
    assert_matches_rebuild(got, ref["features"], ref["bars"])
    online, want = _online(), ref["online"]
    assert online.event_timestamps == want.event_timestamps
    assert set(online.row_status()) == {"fresh"}
    for f in FEATURES:
        a, b = online.values[f.name], want.values[f.name]
        if f.cumulative or f.scale is None:
            assert a == b, f.name
        else:
            assert np.allclose(np.array(a, float), np.array(b, float), rtol=1e-9, equal_nan=True), f.name


@pytest.fixture
def local(tmp_path, monkeypatch):
    monkeypatch.setenv("MT5LAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("MT5LAB_PROFILE", raising=False)
    reset_caches()
    from mt5lab.feast_repo.store import apply

    apply(None, "H1")
    yield tmp_path / "data"
    reset_caches()


def test_replay_equals_batch(profile, replay_file, batch, model):
    import mt5lab
    from mt5lab.feast_repo.store import apply
    from mt5lab.model.predict import predict_online

    apply(None, "H1")
    lines = []
    res = mt5lab.follow(source=f"replay:{replay_file}", timeframe="H1", echo=lines.append)
    assert res.stopped == "end of replay" and res.bars == 2 * N and not res.failing
    assert len(lines) == 2 * N and lines[0].startswith("EURUSD H1 2017-04-19 09:00 UTC written, latency ")
    assert_equals_batch(batch)
    # predict on the follow-built store: the same model gives exactly the batch store's predictions
    got = predict_online(model["dir"], SYMBOLS, now=_now())
    last_close = _bars()["time"].max() + timedelta(hours=1)
    assert [(p.status, p.decision_time) for p in got] == [("ok", last_close)] * 2, [p.reason for p in got]
    want = model["predictions"]
    assert [p.decision_time for p in want] == [last_close] * 2
    assert [p.prediction for p in got] == [p.prediction for p in want]
    # Restarted on a store that is current: nothing to do, nothing changes.
    again = mt5lab.follow(source=f"replay:{replay_file}", timeframe="H1")
    assert again.bars == 0 and again.cycles == 1
    assert_equals_batch(batch)


def _follower(replay_file, env, *extra):
    return subprocess.Popen([sys.executable, "-m", "mt5lab.cli", "follow", "--source", f"replay:{replay_file}",
                             "--timeframe", "H1", *extra], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_kill_9_and_restart_converges(local, replay_file, batch):
    from mt5lab.storage import open_store

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    rng = np.random.default_rng(15)
    kills = []
    for _ in range(5):
        proc = _follower(replay_file, env)
        try:
            wait_lines = int(rng.integers(1, 12))  # status lines seen before the kill
            for _ in range(wait_lines):
                if not proc.stdout.readline():
                    break
            time.sleep(float(rng.uniform(0, 0.08)))  # somewhere in the next update, or between bars
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            proc.stdout.close()
            proc.stderr.close()
        kills.append(open_store().counts().get("features_h1", 0))
    assert len(set(kills)) > 1, kills  # the kills landed at different points of the replay
    done = _follower(replay_file, env)
    out, err = done.communicate(timeout=600)  # generous: CI machines can be loaded
    assert done.returncode == 0, err
    assert "stopped (end of replay)" in err
    assert_equals_batch(batch)


def test_catch_up_after_50_bar_gap(local, replay_file, batch, tmp_path):
    import mt5lab

    head = tmp_path / "head.csv"
    _bars(N - 50).write_csv(head)
    first = mt5lab.follow(source=f"replay:{head}", timeframe="H1")
    assert first.bars == 2 * (N - 50)
    lines = []
    res = mt5lab.follow(source=f"replay:{replay_file}", timeframe="H1", once=True, echo=lines.append)
    assert res.cycles == 1 and res.bars == 100 and res.stopped == "once"
    assert lines == [f"{s} H1 2017-04-21 20:00 UTC written (+49 caught up), latency " + lines[i].split("latency ")[1]
                     for i, s in enumerate(SYMBOLS)]
    assert_equals_batch(batch)


def test_restart_repairs_an_online_store_behind_the_offline_one(local, replay_file, batch):
    """Killed after the offline writes and before the online one: the restart re-sends the last stored
    bar, which rewrites the online row (state here: offline complete, online empty)."""
    import mt5lab
    from mt5lab.bars.ingest import ingest_files
    from mt5lab.features.build import build
    from mt5lab.storage import open_store

    store = open_store()
    ingest_files(store, [replay_file], symbol=None, timeframe="H1", progress=False)
    build(store, ["H1"], progress=False)
    assert set(_online().row_status()) == {"missing"}
    res = mt5lab.follow(source=f"replay:{replay_file}", timeframe="H1")
    assert res.bars == 0 and res.cycles == 1
    assert_equals_batch(batch)


def test_bad_bar_stalls_only_its_symbol(local, tmp_path, caplog):
    import mt5lab

    bars = _bars()
    bad_time = bars["time"][30]
    bad = bars.with_columns(pl.when((pl.col("symbol") == "GBPUSD") & (pl.col("time") == bad_time))
                            .then(pl.col("low") - 0.01).otherwise(pl.col("high")).alias("high"))
    path = tmp_path / "bad.parquet"
    bad.write_parquet(path)
    with caplog.at_level("WARNING", logger="mt5lab.follow"):
        res = mt5lab.follow(source=f"replay:{path}", timeframe="H1")
    faults = [r.getMessage() for r in caplog.records if r.name == "mt5lab.follow"]
    assert len(faults) == 1 and faults[0].startswith("GBPUSD: update failed (BarValidationError: ")
    assert "high below low" in faults[0]
    assert set(res.failing) == {"GBPUSD"} and res.bars == N + 30
    end = bars["time"].max() + timedelta(hours=1)
    fresh = mt5lab.freshness(SYMBOLS, timeframes="H1", now=end + timedelta(minutes=20))
    status = fresh.groupby("symbol")["status"].agg(set).to_dict()
    assert status == {"EURUSD": {"fresh"}, "GBPUSD": {"stale"}}
    assert set(fresh[fresh.symbol == "GBPUSD"]["bars_behind"]) == {N - 30}


def test_sigterm_stops_between_bars(local, replay_file):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = _follower(replay_file, env, "--speed", "36000")  # 0.1 s per H1 bar
    try:
        for _ in range(4):
            assert proc.stdout.readline()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "SIGTERM: stopping after the current bar" in err
    assert 4 + out.count("written") < 2 * N  # stopped early, after a whole bar
    assert "stopped (signal SIGTERM)" in err.strip().splitlines()[-1]


# --- the MetaTrader 5 adapter, on recorded MqlRates arrays --------------------------------------

def _recorded_rates() -> np.ndarray:
    from mt5lab.bars.sources import MQL_RATES

    df = pl.read_parquet(RATES)
    arr = np.zeros(df.height, dtype=MQL_RATES)
    for name in MQL_RATES.names:
        arr[name] = df[name].to_numpy()
    return arr


def _terminal(rates: np.ndarray, tick_time: int):
    """The one stand-in: the few MetaTrader5 functions the adapter calls, on recorded values."""
    def copy_rates_from_pos(symbol, timeframe, pos, count):
        assert timeframe == 16385 and pos == 0
        return rates[::-1][:count][::-1] if symbol == "EURUSD" else None

    return types.SimpleNamespace(
        TIMEFRAME_H1=16385, initialize=lambda **kw: True, shutdown=lambda: None, last_error=lambda: (-10004, "No IPC connection"),
        symbol_select=lambda s, on: True, copy_rates_from_pos=copy_rates_from_pos,
        symbol_info_tick=lambda s: types.SimpleNamespace(time=tick_time))


def test_mql_rates_convert_through_the_server_clock():
    from mt5lab.bars.schema import canonical
    from mt5lab.bars.sources import rates_to_bars

    rates = _recorded_rates()
    bars = rates_to_bars(rates, "EURUSD", "H1", "NY+7")
    assert bars["time"][0] == datetime(2024, 2, 29, 22, tzinfo=UTC)
    assert bars["time"][-1] == datetime(2024, 3, 4, 21, tzinfo=UTC)
    with pytest.warns(UserWarning, match="epoch seconds"):
        ref = canonical(pl.read_parquet(RATES).with_columns(pl.lit("EURUSD").alias("symbol")), "H1",
                        server_tz="NY+7")
    assert bars.equals(ref)
    assert rates_to_bars(rates[:0], "EURUSD", "H1", "NY+7").height == 0


def test_mt5_source_never_returns_the_forming_bar_and_checks_the_clock(local):
    import mt5lab
    from mt5lab.bars.sources import Mt5Source, rates_to_bars
    from mt5lab.errors import ConfigError

    rates = _recorded_rates()
    last_open = rates_to_bars(rates, "EURUSD", "H1", "NY+7")["time"].max()
    now = last_open + timedelta(minutes=30)  # the newest bar is still forming
    tick = int(rates["time"][-1]) + 1800  # server clock: NY+7 = UTC+2 in March before the 10th
    src = Mt5Source("mt5", server_tz="NY+7", api=_terminal(rates, tick), clock=lambda: now)
    res = mt5lab.follow("EURUSD", timeframe="H1", source=src, once=True)
    assert res.bars == len(rates) - 1 and not res.failing
    from mt5lab.storage import open_store

    assert open_store().read_bars("H1")["time"].max() == last_open - timedelta(hours=1)
    # Since the last stored bar: only bars closed after it.
    assert src.bars_since("EURUSD", "H1", last_open - timedelta(hours=2)).height == 1
    # The terminal's tick says UTC+2; --server-tz UTC (or a summer clock) disagrees: refused.
    for wrong in ("UTC", "Etc/GMT-3"):
        bad = Mt5Source("mt5", server_tz=wrong, api=_terminal(rates, tick), clock=lambda: now)
        with pytest.raises(ConfigError, match=r"about UTC\+2.*fix --server-tz"):
            bad.connect(["EURUSD"])
    # A lost terminal: that symbol fails and is retried, the loop goes on.
    gone = Mt5Source("mt5", server_tz="NY+7", api=_terminal(rates, tick), clock=lambda: now)
    res = mt5lab.follow(["EURUSD", "GBPUSD"], timeframe="H1", source=gone, once=True)
    assert set(res.failing) == {"GBPUSD"} and "copy_rates_from_pos(GBPUSD) failed" in res.failing["GBPUSD"]


def test_cli_errors_are_one_line(local, replay_file):
    from click.testing import CliRunner

    from mt5lab.cli import cli

    run = CliRunner().invoke(cli, ["follow", "--source", "tcp:x", "--symbols", "EURUSD"])
    assert run.exit_code == 3 and run.output.strip().splitlines() == [
        "error: unknown source 'tcp:x': expected mt5, mt5linux or replay:PATH"]
    run = CliRunner().invoke(cli, ["follow", "--source", "mt5", "--symbols", "EURUSD"],
                             env={"MT5LAB_SERVER_TZ": ""})
    assert run.exit_code == 3 and "pass server_tz= (CLI: --server-tz)" in run.output
    run = CliRunner().invoke(cli, ["follow", "--source", f"replay:{replay_file}", "--once", "--timeframe", "H1"])
    assert run.exit_code == 0 and "GBPUSD H1 2017-04-21 20:00 UTC written (+59 caught up)" in run.output
