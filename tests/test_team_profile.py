"""The team ("postgres") profile end to end, against servers that really check passwords.

A private scram-sha-256 PostgreSQL cluster and a ``requirepass`` Redis are started for this module
(:mod:`mt5lab.testing.cluster`, :mod:`mt5lab.testing.sandbox`). The whole pipeline runs through the CLI in
a subprocess with a distinctive password; then the working tree, the data directory, every file
written under /tmp and $HOME during the run, the server's log and data files, a dump of the
database (registry included), an executed notebook and all captured output are searched for it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from mt5lab.catalog import FEATURE_NAMES

ROOT = Path(__file__).resolve().parents[1]
MT5LAB = [sys.executable, "-m", "mt5lab.cli"]
# Built at run time, so that neither this file nor its bytecode contains the canary itself.
CORE = "-".join(("S3cret", "7f3a"))
PG_PASSWORD = "-".join(("Canary", CORE + "!x"))
REDIS_PASSWORD = "-".join(("Canary", CORE + "!r"))
WRONG = "-".join(("Wr0ng", CORE))
ODD_PASSWORD = "".join(("p@ss:w/rd%#?\"' ", CORE, " {x}"))  # URL and YAML metacharacters
NEEDLES = sorted({s.encode() for s in (
    CORE, PG_PASSWORD, REDIS_PASSWORD, WRONG, ODD_PASSWORD, *(quote(p, safe="") for p in (
        PG_PASSWORD, REDIS_PASSWORD, ODD_PASSWORD)), json.dumps(ODD_PASSWORD)[1:-1])})

pytestmark = [pytest.mark.services, pytest.mark.slow]


def _profile_env(pg: dict, rport: int, data: Path, **over) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MT5LAB_")}
    env |= {"MT5LAB_PROFILE": "postgres", "MT5LAB_DATA_DIR": str(data), "TQDM_DISABLE": "1",
            "MT5LAB_PG_HOST": pg["host"], "MT5LAB_PG_PORT": str(pg["port"]),
            "MT5LAB_PG_DATABASE": pg["database"], "MT5LAB_PG_USER": "mt5",
            "MT5LAB_PG_PASSWORD": PG_PASSWORD, "MT5LAB_PG_SSLMODE": "disable",
            "MT5LAB_REDIS_HOST": "127.0.0.1", "MT5LAB_REDIS_PORT": str(rport), "MT5LAB_REDIS_DB": "0",
            "MT5LAB_REDIS_PASSWORD": REDIS_PASSWORD}
    return env | over


def _cli(args, env, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([*MT5LAB, *args], capture_output=True, text=True, env=env, timeout=timeout,
                          cwd=ROOT)


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """Both servers up, and the demo run once through the CLI with the canary passwords."""
    from mt5lab.testing.cluster import pg_bindir, postgres_cluster
    from mt5lab.testing.sandbox import redis_server
    from tests.conftest import require_service

    require_service("PostgreSQL", "127.0.0.1", 5432)  # the same packages provide initdb
    missing = [exe for exe in ("redis-server", "runuser") if shutil.which(exe) is None]
    try:
        pg_bindir()
    except RuntimeError:
        missing.append("initdb")
    if missing:
        msg = f"needs {', '.join(missing)} to start throwaway servers"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg + " (CI=true: services are required)")
        pytest.skip(msg)
    t0 = time.time() - 1
    data = tmp_path_factory.mktemp("team") / "data"
    with postgres_cluster({"mt5": PG_PASSWORD, "odd": ODD_PASSWORD}) as pg, \
            redis_server(REDIS_PASSWORD) as (_, rport):
        env = _profile_env(pg, rport, data)
        demo = _cli(["demo"], env)
        assert demo.returncode == 0, demo.stderr[-3000:]
        yield {"pg": pg, "rport": rport, "env": env, "data": data, "t0": t0, "outputs": [demo]}


def _hits(path: Path) -> list[str]:
    try:
        blob = path.read_bytes()
    except OSError:
        return []
    return [n.decode() for n in NEEDLES if n in blob]


def _scan(roots: list[Path], since: float | None = None, skip=(".venv", ".git")) -> dict[str, list[str]]:
    found = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d not in skip
                           and not d.startswith(("mt5lab-pgcluster-", "bash_jobs"))]
            for name in filenames:
                p = Path(dirpath) / name
                try:
                    st = p.lstat()
                except OSError:
                    continue
                if not p.is_file() or p.is_symlink() or (since is not None and st.st_mtime < since):
                    continue
                if hits := _hits(p):
                    found[str(p)] = hits
    return found


def test_demo_pipeline_reads_back_all_42_features(team):
    out = team["outputs"][0].stdout
    assert "ingest: 7148 sample bars validated" in out
    assert "build D1: 2148 new" in out and "build H1: 5000 new" in out
    assert out.count("6 views, 42 features, 1 feature service") == 2
    assert "materialize D1: 1 of 1 symbols written" in out
    # as of the day after GOOG's last bar closed (2013-03-01 D1: closes 2013-03-02 00:00 UTC)
    online = _cli(["online", "GOOG", "EURUSD", "--json", "--now", "2013-03-02T00:00:00+00:00"], team["env"])
    assert online.returncode == 0, online.stderr
    rows = {r["symbol"]: r for r in json.loads(online.stdout)}
    assert {"symbol", *FEATURE_NAMES, "status"} <= set(rows["GOOG"])
    assert rows["GOOG"]["close"] == 806.19  # GOOG's last close in the sample CSV (2013-03-01)
    assert rows["GOOG"]["status"] == "fresh"
    assert rows["GOOG"]["ohlcv_features__event_timestamp"] == "2013-03-02T00:00:00+00:00"
    assert rows["EURUSD"]["close"] is None and rows["EURUSD"]["status"] == "missing"  # D1 has no EURUSD
    # as of now the same value is years past its ttl: expired, null, with its event time
    now = json.loads(_cli(["online", "GOOG", "--json"], team["env"]).stdout)[0]
    assert (now["status"], now["close"]) == ("expired", None)
    # "since last time": nothing changed, nothing written. Verbose: every library's DEBUG log is
    # captured too, for the secret search below.
    again = _cli(["materialize", "--verbose"], team["env"])
    team["outputs"] += [online, again]
    assert again.returncode == 0, again.stderr
    assert "D1: 0 of 1 symbols written" in again.stdout and "H1: 0 of 1 symbols written" in again.stdout


def test_online_redis_equals_offline_latest_for_every_feature(team, monkeypatch):
    from mt5lab.feast_repo import store as store_mod
    from mt5lab.online.feast_read import online_frame
    from mt5lab.storage import open_store

    for k, v in team["env"].items():
        if k.startswith("MT5LAB_"):
            monkeypatch.setenv(k, v)
    store_mod._STORES.clear()
    try:
        st = open_store("postgres")
        for tf, sym in (("D1", "GOOG"), ("H1", "EURUSD")):
            off = st.latest_features(tf).row(0, named=True)
            on = online_frame([sym], tf, "postgres").iloc[0]  # Feast's own get_online_features
            assert off["symbol"] == sym
            for name in FEATURE_NAMES:
                a, b = off[name], on[name]
                if a is None:
                    assert b is None or b != b, f"{tf} {name}: offline null, online {b!r}"
                else:
                    assert b == a, f"{tf} {name}: offline {a!r}, online {b!r}"
            assert sum(off[n] is not None for n in FEATURE_NAMES) >= 41  # only spread is null
    finally:
        store_mod._STORES.clear()


def test_feast_reads_the_postgres_source_with_the_password(team, monkeypatch):
    """Feast's own Postgres offline store (password, sslmode from the variables) sees mt5lab's rows."""
    import pandas as pd

    from mt5lab.feast_repo import store as store_mod
    from mt5lab.feast_repo.store import feature_store
    from mt5lab.storage import open_store

    for k, v in team["env"].items():
        if k.startswith("MT5LAB_"):
            monkeypatch.setenv(k, v)
    store_mod._STORES.clear()
    try:
        off = open_store("postgres").read_features("D1", ["GOOG"]).tail(3)
        ents = pd.DataFrame({"symbol": ["GOOG"] * 3, "event_timestamp": off["event_timestamp"].to_list()})
        fs = feature_store("postgres", "D1")
        got = fs.get_historical_features(ents, ["ohlcv_features:close", "technical_indicators_ma:sma_200"]).to_df()
        got = got.sort_values("event_timestamp")
        assert got["close"].tolist() == off["close"].to_list()
        assert got["sma_200"].tolist() == off["sma_200"].to_list()
    finally:
        store_mod._STORES.clear()


def test_odd_password_survives_url_yaml_and_libpq(team):
    """A password full of URL/YAML metacharacters authenticates on both PostgreSQL paths (mt5lab's
    psycopg connection and Feast's SQLAlchemy registry URL): ``apply`` needs both."""
    env = team["env"] | {"MT5LAB_PG_USER": "odd", "MT5LAB_PG_PASSWORD": ODD_PASSWORD}
    import psycopg
    from psycopg import sql

    pg = team["pg"]

    with psycopg.connect(**pg["superuser"], autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE odd_db OWNER odd"))
    env["MT5LAB_PG_DATABASE"] = "odd_db"
    out = _cli(["apply", "--timeframe", "D1"], env)
    team["outputs"].append(out)
    assert out.returncode == 0, out.stderr
    assert "6 views, 42 features, 1 feature service" in out.stdout


def _assert_one_line_auth_error(out, *expect):
    text = out.stdout + out.stderr
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: ") and "authentication failed" in lines[0], lines[0]
    for e in expect:
        assert e in lines[0], (e, lines[0])
    assert "Traceback" not in text
    assert not [n for n in NEEDLES if n in text.encode()], text


def test_wrong_postgres_password_is_one_clear_line(team):
    pg = team["pg"]
    wrong = team["env"] | {"MT5LAB_PG_PASSWORD": WRONG}
    for args in (["apply"], ["online", "GOOG"]):  # the offline store's path, the registry's path
        out = _cli(args, wrong)
        team["outputs"].append(out)
        _assert_one_line_auth_error(out, f"{pg['host']}:{pg['port']}", "'mt5'", "PostgreSQL")


def test_wrong_or_missing_redis_password_is_one_clear_line(team):
    for pw in (WRONG, ""):
        out = _cli(["online", "GOOG"], team["env"] | {"MT5LAB_REDIS_PASSWORD": pw})
        team["outputs"].append(out)
        _assert_one_line_auth_error(out, f"127.0.0.1:{team['rport']}", "Redis", "'default'")


def test_concurrent_apply_from_two_processes(team, monkeypatch):
    """Two `mt5lab apply` at the same instant into a registry that does not exist yet (fresh
    database): both succeed and the registry holds exactly the catalog."""
    import psycopg
    from psycopg import sql

    pg = team["pg"]
    with psycopg.connect(**pg["superuser"], autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE race_db OWNER mt5"))
    env = team["env"] | {"MT5LAB_PG_DATABASE": "race_db"}
    procs = [subprocess.Popen([*MT5LAB, "apply", "--timeframe", "D1", "--timeframe", "H1"], text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
             for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (o, e) in zip(procs, outs, strict=True):
        assert p.returncode == 0, e
        assert o.count("6 views, 42 features, 1 feature service") == 2, o
    with psycopg.connect(host=pg["host"], port=pg["port"], user="mt5", password=PG_PASSWORD,
                         dbname="race_db") as conn:
        views = conn.execute("SELECT project_id, count(*) FROM feature_views GROUP BY 1 ORDER BY 1").fetchall()
        services = conn.execute("SELECT project_id, feature_service_name FROM feature_services ORDER BY 1").fetchall()
        entities = conn.execute("SELECT project_id, entity_name FROM entities ORDER BY 1, 2").fetchall()
    assert views == [("mt5lab", 6), ("mt5lab_h1", 6)]
    assert services == [("mt5lab", "mt5_v1"), ("mt5lab_h1", "mt5_v1")]
    assert entities == [(p, e) for p in ("mt5lab", "mt5lab_h1") for e in ("__dummy", "symbol")]  # Feast's + ours
    # And Feast itself reads every object back intact.
    from mt5lab.feast_repo import store as store_mod

    for k, v in env.items():
        if k.startswith("MT5LAB_"):
            monkeypatch.setenv(k, v)
    store_mod._STORES.clear()
    try:
        for tf in ("D1", "H1"):
            assert store_mod.registry_summary("postgres", tf) == {
                "views": 6, "features": 42, "services": 1, "catalog_views_present": 6}
    finally:
        store_mod._STORES.clear()


def test_executed_notebook_holds_no_secret(team, tmp_path, monkeypatch):
    from mt5lab.notebook.report import execute

    for k, v in team["env"].items():
        if k.startswith("MT5LAB_"):
            monkeypatch.setenv(k, v)
    run = execute(ROOT / "notebooks" / "05_online_serving.ipynb", tmp_path / "nb",
                  parameters={"profile": "postgres", "samples": False, "symbols": "GOOG"})
    assert run.ok, run.error
    assert _scan([tmp_path / "nb"]) == {}
    team["notebook_dir"] = tmp_path / "nb"


def test_lock_is_held_across_processes(team, monkeypatch):
    """``lock()`` is a real cross-process lock: while another process holds it, this process's
    ``lock()`` blocks and the advisory lock cannot be taken; once released, both succeed."""
    import psycopg

    from mt5lab.storage import open_store
    from mt5lab.storage.pg_schema import LOCK_CLASS, LOCK_WRITER

    env = team["env"]
    code = ("import sys; from mt5lab.storage import open_store\n"
            "with open_store('postgres').lock():\n"
            "    print('locked', flush=True); sys.stdin.readline()\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env=env, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "locked"
        pg = team["pg"]
        with psycopg.connect(host=pg["host"], port=pg["port"], user="mt5", password=PG_PASSWORD,
                             dbname=pg["database"], autocommit=True) as conn:
            try_lock = "SELECT pg_try_advisory_lock(%s, %s)"
            assert conn.execute(try_lock, (LOCK_CLASS, LOCK_WRITER)).fetchone()[0] is False
            for k, v in env.items():
                if k.startswith("MT5LAB_"):
                    monkeypatch.setenv(k, v)
            got = threading.Event()

            def take():
                with open_store("postgres").lock():
                    got.set()

            t = threading.Thread(target=take)
            t.start()
            assert not got.wait(1.0), "lock() returned while another process held the lock"
            holder.stdin.write("\n")
            holder.stdin.flush()
            assert got.wait(30), "lock() did not return after the other process released it"
            t.join(30)
            assert conn.execute(try_lock, (LOCK_CLASS, LOCK_WRITER)).fetchone()[0] is True
    finally:
        holder.kill()
        holder.wait(30)


def test_zz_no_secret_anywhere(team):
    """Runs last in this module: everything the tests above produced."""
    import psycopg

    pg = team["pg"]
    assert len(team["outputs"]) >= 8
    for out in team["outputs"]:
        text = (out.stdout or "") + (out.stderr or "")
        assert not [n for n in NEEDLES if n in text.encode()], text[-2000:]
    assert _scan([ROOT]) == {}, "secret in the working tree"
    assert _scan([team["data"]]) == {}, "secret in the data dir"
    assert list(team["data"].rglob("*.png")), "the demo wrote its chart into the data dir"
    home = Path(os.path.expanduser("~"))
    assert _scan([Path(tempfile_dir()), home], since=team["t0"]) == {}, "secret in a file written during the run"
    # The server: its log and files (the role holds a SCRAM verifier, never the password) ...
    assert _hits(pg["log"]) == [] and "authentication failed" in pg["log"].read_text()
    assert _scan([pg["datadir"]], skip=()) == {}
    # ... and everything stored in the databases, the Feast registry included.
    with psycopg.connect(**pg["superuser"] | {"dbname": pg["database"]}) as conn:
        tables = conn.execute("SELECT table_schema, table_name FROM information_schema.tables "
                              "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')").fetchall()
        assert ("public", "feature_views") in tables and ("features", "d1") in tables
        dump = []
        with conn.cursor() as cur:
            for schema, name in tables:
                with cur.copy(f'COPY "{schema}"."{name}" TO STDOUT') as cp:
                    dump.extend(bytes(b) for b in cp)
        blob = b"".join(dump)
        assert len(blob) > 100_000
        assert not [n for n in NEEDLES if n in blob]


def tempfile_dir() -> str:
    import tempfile

    return tempfile.gettempdir()
