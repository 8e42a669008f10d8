"""Faults, for real: a Redis server killed (-9) mid-``materialize``, a PostgreSQL backend terminated
mid-ingest, a full disk (a file-size limit in the subprocess) under ``apply``/``ingest``/``build``, and
two writers at once. After each: a clear one-line error, nothing corrupt or half-written that could
pass for fresh, and a rerun that completes with the result of one clean run. Every output of a fault
(stderr, and ``--verbose`` tracebacks) is searched for the profile's secrets.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from mt5lab.errors import StoreError

ROOT = Path(__file__).resolve().parents[1]
MT5LAB = [sys.executable, "-m", "mt5lab.cli"]
# Built at run time so that no source or bytecode file holds the canary itself.
CANARY = "-".join(("Fault", "Canary", "9c1e"))
PG_CANARY = CANARY + "-pg"
RD_CANARY = CANARY + "-rd"

pytestmark = pytest.mark.slow


def tree_hash(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def assert_no_secret(*texts: str) -> None:
    for t in texts:
        assert CANARY not in (t or ""), (t or "")[-3000:]


def one_line_error(out: subprocess.CompletedProcess, code: int, *expect: str) -> str:
    assert out.returncode == code, (out.returncode, out.stdout[-1000:], out.stderr[-3000:])
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr[-3000:]
    for e in expect:
        assert e in lines[0], (e, lines[0])
    assert_no_secret(out.stdout, out.stderr)
    return lines[0]


def local_env(data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MT5LAB_")}
    return env | {"MT5LAB_DATA_DIR": str(data), "TQDM_DISABLE": "1"}


def cli(args, env, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([*MT5LAB, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)


def h1_export(path: Path, start: datetime, n: int, bump: float = 0.0) -> Path:
    """``n`` FX-hours of EURUSD-like H1 bars from ``start`` (the FX weekend, Friday 17:00 to Sunday 17:00
    New York, skipped), MT5 export format on a UTC server clock."""
    from mt5lab.bars.calendars import is_open

    rows, t, i = [], start, 0
    while len(rows) < n:
        if is_open(t, "fx") and is_open(t + timedelta(minutes=59), "fx"):
            c = 1.23 + 0.001 * np.sin(i / 7) + bump
            rows.append(f"{t:%Y.%m.%d}\t{t:%H:%M:%S}\t{c:.5f}\t{c + 0.0008:.5f}\t{c - 0.0008:.5f}\t{c:.5f}\t{100 + i}\t0\t2")
            i += 1
        t += timedelta(hours=1)
    path.write_text("<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>\n" + "\n".join(rows) + "\n")
    return path


AFTER_SAMPLE = datetime(2018, 2, 8, tzinfo=UTC)  # the EURUSD H1 sample ends 2018-02-07


@pytest.fixture
def demo_copy(demo_store, tmp_path):
    """A private copy of the demo store (samples ingested, built, applied, materialized)."""
    d = tmp_path / "data"
    shutil.copytree(demo_store["dir"], d)
    return d


def registry_objects(data: Path, monkeypatch) -> dict:
    """What the local registry lists, read by Feast afresh (no cached store)."""
    from mt5lab.feast_repo import store as store_mod

    monkeypatch.setenv("MT5LAB_DATA_DIR", str(data))
    monkeypatch.delenv("MT5LAB_PROFILE", raising=False)
    store_mod._STORES.clear()
    try:
        out = {}
        for tf in ("D1", "H1"):
            fs = store_mod.feature_store(None, tf)
            objs = [*fs.list_feature_views(), *fs.list_feature_services(), *fs.list_entities()]
            out[tf] = sorted(f"{type(o).__name__}:{o.name}:{len(getattr(o, 'features', []))}" for o in objs)
        return out
    finally:
        store_mod._STORES.clear()


# -- disk full: a file-size limit set in the subprocess after Feast's own start-up files -------------
LIMITED = ("import resource, sys\n"
           "import feast, feast.metrics  # Feast creates 1 MiB metric files at import\n"
           "from mt5lab.cli import main\n"
           "resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), resource.RLIM_INFINITY))\n"
           "sys.argv = ['mt5lab', *sys.argv[2:]]\n"
           "main()\n")


def limited(limit: int, args: list[str], env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", LIMITED, str(limit), *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=600)


def test_disk_full_during_apply_leaves_the_registry_whole(demo_copy, monkeypatch):
    reg = demo_copy / "registry.db"
    before, objects = reg.read_bytes(), registry_objects(demo_copy, monkeypatch)
    assert objects["D1"] and len(before) > 20_000
    out = limited(len(before) // 2, ["apply", "--timeframe", "D1", "--timeframe", "H1"], local_env(demo_copy))
    one_line_error(out, StoreError.exit_code, "cannot write the feature registry", "registry.db",
                   "previous registry is unchanged")
    assert reg.read_bytes() == before
    assert not [p for p in demo_copy.iterdir() if p.name.startswith(".registry-")]  # no temp left
    assert registry_objects(demo_copy, monkeypatch) == objects
    from mt5lab.feast_repo.store import apply

    try:  # and the next apply works
        assert apply(None, "D1")["views"] == 6
    finally:
        from mt5lab.feast_repo import store as store_mod

        store_mod._STORES.clear()


def test_disk_full_during_ingest_and_build_changes_nothing(demo_copy, tmp_path):
    new = h1_export(tmp_path / "EURUSD_H1.csv", AFTER_SAMPLE, 500)
    env = local_env(demo_copy)
    before = tree_hash(demo_copy)
    bars_file = demo_copy / "offline" / "bars" / "timeframe=H1" / "bars.parquet"
    out = limited(bars_file.stat().st_size // 2, ["ingest", str(new), "--symbol", "EURUSD", "--timeframe", "H1", "--server-tz", "UTC"], env)
    one_line_error(out, StoreError.exit_code, "cannot write", "bars.parquet")
    assert tree_hash(demo_copy) == before
    # Ingest for real, then a build that cannot write its features file.
    from mt5lab.bars.ingest import ingest_files
    from mt5lab.storage.local import LocalStore

    ok = ingest_files(LocalStore(demo_copy), [new], symbol="EURUSD", timeframe="H1", server_tz="UTC", progress=False)
    assert ok.write.inserted == 500
    before = tree_hash(demo_copy)
    feats = demo_copy / "offline" / "features" / "timeframe=H1" / "features.parquet"
    out = limited(feats.stat().st_size // 2, ["build", "--timeframe", "H1"], env)
    one_line_error(out, StoreError.exit_code, "cannot write", "features.parquet")
    assert tree_hash(demo_copy) == before


# -- two writers at once -----------------------------------------------------------------------------
def _features(data: Path, tf: str) -> pl.DataFrame:
    from mt5lab.storage.local import LocalStore

    return LocalStore(data).read_features(tf).drop("created_timestamp")


def test_two_builds_at_once_equal_one(tmp_path):
    from mt5lab.bars.ingest import load_samples, write
    from mt5lab.storage.local import LocalStore

    dirs = [tmp_path / "race" / "data", tmp_path / "single" / "data"]
    for d in dirs:
        write(LocalStore(d), *load_samples())
    procs = [subprocess.Popen([*MT5LAB, "build"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=local_env(dirs[0]), cwd=ROOT) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    text = "".join(o for o, _ in outs)
    # Under the lock one process computes everything, the other finds every row unchanged.
    assert text.count("D1: 2148 new") == 1 and text.count("D1: 0 new, 0 revised, 2148 unchanged") == 1, text
    assert text.count("H1: 5000 new") == 1 and text.count("H1: 0 new, 0 revised, 5000 unchanged") == 1, text
    single = cli(["build"], local_env(dirs[1]))
    assert single.returncode == 0, single.stderr
    for tf in ("D1", "H1"):
        assert _features(dirs[0], tf).equals(_features(dirs[1], tf))
    assert not [p for p in dirs[0].rglob(".tmp-*")]


def test_two_updates_at_once_equal_one(demo_store, tmp_path, monkeypatch):
    from mt5lab.bars.ingest import read_files
    from mt5lab.online.feast_read import online_frame
    from mt5lab.online.update import update
    from mt5lab.storage.local import LocalStore

    race, single = tmp_path / "race", tmp_path / "single"
    for d in (race, single):
        shutil.copytree(demo_store["dir"], d)
    objects = registry_objects(race, monkeypatch)
    new = h1_export(tmp_path / "next.csv", AFTER_SAMPLE, 48)
    args = ["update", str(new), "--symbol", "EURUSD", "--timeframe", "H1", "--server-tz", "UTC"]
    procs = [subprocess.Popen([*MT5LAB, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=local_env(race), cwd=ROOT) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    text = "".join(o for o, _ in outs)
    assert text.count("48 bars (48 new, 0 revised, 0 unchanged)") == 1, text
    assert text.count("48 bars (0 new, 0 revised, 48 unchanged)") == 1, text
    assert registry_objects(race, monkeypatch) == objects
    race_online = online_frame(["EURUSD"], "H1")
    registry_objects(single, monkeypatch)  # points the process at the reference copy
    bars, _ = read_files([new], symbol="EURUSD", timeframe="H1", server_tz="UTC", progress=False)
    update(bars, timeframe="H1", source=str(new))  # one run, the reference
    assert LocalStore(race).read_bars("H1").equals(LocalStore(single).read_bars("H1"))
    assert _features(race, "H1").equals(_features(single, "H1"))
    assert race_online.equals(online_frame(["EURUSD"], "H1"))
    from mt5lab.feast_repo import store as store_mod

    store_mod._STORES.clear()


# -- PostgreSQL: the ingest's backend terminated mid-COPY ----------------------------------------------
def m1_generic(path: Path, n: int) -> Path:
    t0 = datetime(2020, 1, 6, tzinfo=UTC)
    c = 1.1 + np.cumsum(np.random.default_rng(3).normal(0, 1e-5, n)).round(5)
    t = pl.datetime_range(t0, t0 + (n - 1) * timedelta(minutes=1), "1m", eager=True, time_unit="us", time_zone="UTC")
    pl.DataFrame({"time": t.dt.strftime("%Y-%m-%dT%H:%M:%SZ"), "open": c, "high": c + 1e-4, "low": c - 1e-4,
                  "close": c, "tick_volume": np.full(n, 5)}).write_csv(path, float_precision=5)
    return path


@pytest.fixture
def pg_env(tmp_path):
    """A fresh database with the samples; the postgres profile's variables (a canary password: the
    machine's server trusts local connections, so it travels but is never checked)."""
    from mt5lab.bars.ingest import load_samples, write
    from mt5lab.storage.postgres import PostgresStore
    from mt5lab.testing.sandbox import free_port, postgres_database
    from tests.conftest import require_service

    require_service("PostgreSQL", "127.0.0.1", 5432)
    with postgres_database() as db:
        store = PostgresStore("127.0.0.1", 5432, db, "postgres", "", "disable")
        write(store, *load_samples())
        env = local_env(tmp_path / "data") | {
            "MT5LAB_PROFILE": "postgres", "MT5LAB_PG_HOST": "127.0.0.1", "MT5LAB_PG_PORT": "5432",
            "MT5LAB_PG_DATABASE": db, "MT5LAB_PG_USER": "postgres", "MT5LAB_PG_PASSWORD": PG_CANARY,
            "MT5LAB_PG_SSLMODE": "disable", "MT5LAB_REDIS_HOST": "127.0.0.1", "MT5LAB_REDIS_PORT": str(free_port()),
            "MT5LAB_REDIS_DB": "0", "MT5LAB_REDIS_PASSWORD": RD_CANARY}
        yield store, env
        store.close()


def pg_fingerprint(store) -> dict:
    from tests.test_hostile_inputs import pg_fingerprint as fp

    with store.connect() as conn:
        return fp(conn)


@pytest.mark.services
def test_postgres_backend_terminated_mid_ingest_rolls_back(pg_env, tmp_path):
    store, env = pg_env
    n = 1_000_000
    path = m1_generic(tmp_path / "EURUSD_M1.csv", n)
    before = pg_fingerprint(store)
    args = ["ingest", str(path), "--symbol", "EURUSD", "--timeframe", "M1", "--calendar", "24x7", "--server-tz", "UTC"]
    proc = subprocess.Popen([*MT5LAB, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=ROOT)
    killed = []
    with store.connect() as conn:
        deadline = time.monotonic() + 300
        while proc.poll() is None and not killed and time.monotonic() < deadline:
            killed = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                                  "current_database() AND application_name = 'mt5lab' AND state = 'active' "
                                  "AND query ILIKE 'COPY%%'").fetchall()
            time.sleep(0.01)
    out, err = proc.communicate(timeout=300)
    assert killed == [(True,)], f"never caught the COPY in flight: {out} {err}"
    one_line_error(subprocess.CompletedProcess(args, proc.returncode, out, err), StoreError.exit_code,
                   "write rolled back, nothing stored", "127.0.0.1:5432")
    assert pg_fingerprint(store) == before
    # --verbose on a fault path: the traceback is shown, the password is not.
    rerun = cli(args, env)
    assert rerun.returncode == 0 and f"ingested {n} bars: {n} new" in rerun.stdout, rerun.stderr[-2000:]
    assert store.counts() == {"bars_d1": 2148, "bars_h1": 5000, "bars_m1": n}  # what a clean run stores
    after = pg_fingerprint(store)
    again = cli(args, env)
    assert again.returncode == 0 and f"0 new, 0 revised, {n} unchanged" in again.stdout, again.stderr
    assert pg_fingerprint(store) == after
    assert_no_secret(out, err, rerun.stdout, rerun.stderr, again.stdout, again.stderr)


@pytest.mark.services
def test_postgres_down_errors_hold_no_secret(pg_env, tmp_path):
    """Connection refused on every verb that touches the offline store, with and without --verbose."""
    from mt5lab.testing.sandbox import free_port

    _, env = pg_env
    env = env | {"MT5LAB_PG_PORT": str(free_port())}
    path = h1_export(tmp_path / "x.csv", AFTER_SAMPLE, 3)
    for args in (["ingest", str(path), "--symbol", "EURUSD", "--timeframe", "H1", "--server-tz", "UTC"], ["build"], ["materialize"]):
        out = cli(args, env)
        line = one_line_error(out, StoreError.exit_code, "PostgreSQL at 127.0.0.1:")
        assert "postgres" in line
        verbose = cli([*args, "--verbose"], env)
        assert verbose.returncode == StoreError.exit_code and "Traceback" in verbose.stderr
        assert_no_secret(verbose.stdout, verbose.stderr)


# -- Redis: killed -9 in the middle of materialize, restarted from its append-only file ----------------
class RedisProcess:
    """A throwaway redis-server with ``appendfsync always`` that can be killed and restarted in place."""

    def __init__(self, workdir: Path, password: str):
        from mt5lab.testing.sandbox import free_port

        self.dir, self.password, self.port, self.proc = workdir, password, free_port(), None
        workdir.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        conf = [f"port {self.port}", "bind 127.0.0.1", f"dir {self.dir}", "appendonly yes", "appendfsync always",
                'save ""', "daemonize no", "loglevel warning", 'logfile ""', f"requirepass {self.password}"]
        self.proc = subprocess.Popen([shutil.which("redis-server"), "-"], stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.proc.stdin.write(("\n".join(conf) + "\n").encode())
        self.proc.stdin.close()
        deadline = time.monotonic() + 20
        while True:
            try:
                if self.client().ping():
                    return
            except Exception:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)

    def client(self):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, socket_timeout=5)

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def _feature_rows(symbols: list[str], when: datetime, seed: int) -> pl.DataFrame:
    from mt5lab.storage.base import feature_schema

    rng = np.random.default_rng(seed)
    n, cols = len(symbols), {}
    for name, dtype in feature_schema().items():
        if name == "symbol":
            cols[name] = symbols
        elif name in ("time", "event_timestamp"):
            cols[name] = [when + (timedelta(days=1) if name == "event_timestamp" else timedelta(0))] * n
        elif name == "created_timestamp":
            cols[name] = [when + timedelta(days=1)] * n
        elif dtype == pl.Float64:
            cols[name] = rng.normal(100, 10, n)
        else:
            cols[name] = rng.integers(-100, 100, n)
    return pl.DataFrame(cols, schema=feature_schema())


def _online_rows(profile, symbols: list[str]) -> dict[str, list]:
    """Per symbol, per view: (event ts, {feature: value}) as Feast's Redis store returns them."""
    from mt5lab.feast_repo import store as store_mod
    from mt5lab.online.tables import OnlineTables, to_python

    store_mod._STORES.clear()
    tables = OnlineTables(profile, "D1")
    keys = tables.keys(symbols)
    out: dict[str, list] = {s: [] for s in symbols}
    for i, (_, feats) in enumerate(tables.views):
        for s, (ts, vals) in zip(symbols, tables.read_view(i, keys), strict=True):
            out[s].append((ts, None if vals is None else {f: to_python(vals[f]) for f in feats}))
    return out


def _matches(online_view: tuple, offline_row: dict) -> bool:
    ts, vals = online_view
    if ts != offline_row["event_timestamp"]:
        return False
    return all((v is None and offline_row[f] is None) or v == offline_row[f] for f, v in vals.items())


@pytest.mark.services
def test_redis_killed_mid_materialize_then_rerun_heals(pg_env, tmp_path, monkeypatch):
    from mt5lab.feast_repo import store as store_mod
    from mt5lab.feast_repo.store import apply
    from mt5lab.online.materialize import materialize

    store, env = pg_env
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is needed (the machine's Redis service comes from the same package)")
    redis = RedisProcess(tmp_path / "redis", RD_CANARY)
    redis.start()
    env = env | {"MT5LAB_REDIS_PORT": str(redis.port)}
    for k, v in env.items():
        if k.startswith("MT5LAB_"):
            monkeypatch.setenv(k, v)
    store_mod._STORES.clear()
    try:
        apply("postgres", "D1")
        n = 6_000
        symbols = [f"S{i:05d}" for i in range(n)]
        t1, t2 = datetime(2024, 1, 2, tzinfo=UTC), datetime(2024, 1, 3, tzinfo=UTC)
        old, new = _feature_rows(symbols, t1, 1), _feature_rows(symbols, t2, 2)
        store.write_features("D1", old)
        assert materialize(store, "postgres", "D1", progress=False).written == n
        store.write_features("D1", new)
        r = redis.client()
        base = int(r.info("commandstats").get("cmdstat_hset", {}).get("calls", 0))
        proc = subprocess.Popen([*MT5LAB, "materialize", "--timeframe", "D1"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        calls = 0
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            calls = int(r.info("commandstats").get("cmdstat_hset", {}).get("calls", 0)) - base
            if calls > 0:
                r.execute_command("CLIENT", "PAUSE", "60000", "WRITE")  # freeze it mid-write ...
                calls = int(r.info("commandstats").get("cmdstat_hset", {}).get("calls", 0)) - base
                redis.kill9()  # ... and kill it there
                break
        out, err = proc.communicate(timeout=300)
        assert 0 < calls < n, f"redis was not killed mid-write ({calls} of {n} rows written)"
        print(f"redis killed after {calls} of {n} HSETs")
        one_line_error(subprocess.CompletedProcess([], proc.returncode, out, err), StoreError.exit_code,
                       f"Redis at 127.0.0.1:{redis.port}")
        down = cli(["online", "S00001", "--verbose"], env)  # a fault path with a traceback
        assert down.returncode != 0 and "Traceback" in down.stderr
        assert_no_secret(down.stdout, down.stderr)

        redis.start()  # from its append-only file: what was acknowledged before the kill
        rows = _online_rows("postgres", symbols)
        by = {0: old.rows_by_key("symbol", named=True, unique=True), 1: new.rows_by_key("symbol", named=True, unique=True)}
        fresh = 0
        for s in symbols:
            views = rows[s]
            # Nothing half-written: each view holds exactly the offline row its timestamp names.
            assert all(_matches(v, by[0][s]) or _matches(v, by[1][s]) for v in views), (s, views[:1])
            fresh += all(_matches(v, by[1][s]) for v in views)
        assert 0 < fresh < n, fresh  # the kill really fell in the middle

        rerun = cli(["materialize", "--timeframe", "D1"], env)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        assert f"D1: {n - fresh} of {n} symbols written" in rerun.stdout, rerun.stdout
        rows = _online_rows("postgres", symbols)
        latest = store.latest_features("D1").rows_by_key("symbol", named=True, unique=True)
        assert all(_matches(v, latest[s]) for s in symbols for v in rows[s])
        assert_no_secret(rerun.stdout, rerun.stderr)
        redis.stop()  # its append-only file and everything the runs wrote hold no password
        leaks = [str(p) for p in tmp_path.rglob("*") if p.is_file() and CANARY.encode() in p.read_bytes()]
        assert leaks == []
    finally:
        store_mod._STORES.clear()
        redis.stop()
