"""PostgresStore on the machine's PostgreSQL, in a fresh database per test session.

Expected values come from plain polars on the inputs (or from the catalog), never from the store.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import psycopg
import pytest

from mt5lab.catalog import BAR_SCHEMA, FEATURE_NAMES, FEATURES, TIMEFRAMES
from mt5lab.errors import StoreError
from mt5lab.storage.base import FEATURE_COLUMNS, feature_schema

pytestmark = pytest.mark.services
T0 = datetime(2021, 1, 4, tzinfo=UTC)
ODD = ["x'); DROP TABLE market_data.ohlcv_d1; --", 'we"ird,sym\nbol', "ÄÖÜ.€", "a\\b", "$1", "%(symbol)s"]


@pytest.fixture(scope="module")
def db():
    from mt5lab.testing.sandbox import postgres_database
    from tests.conftest import require_service

    require_service("PostgreSQL", "127.0.0.1", 5432)
    with postgres_database() as name:
        yield name


@pytest.fixture
def store(db):
    """A store on the module's database, emptied before each test."""
    from mt5lab.storage.postgres import PostgresStore

    st = PostgresStore("127.0.0.1", 5432, db, "postgres", "", "disable")
    st.migrate()
    with st.connect() as conn:
        tables = conn.execute("SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
                              "WHERE schemaname IN ('market_data', 'features')").fetchall()
        conn.execute("TRUNCATE " + ", ".join(t for (t,) in tables))
    yield st
    st.close()


def bars(symbols, n, tf="D1", start=T0, seed=0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    step = TIMEFRAMES[tf]
    frames = []
    for s in symbols:
        c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
        frames.append(pl.DataFrame({
            "symbol": s, "timeframe": tf, "time": [start + i * step for i in range(n)],
            "open": c * (1 + rng.normal(0, 0.002, n)), "high": c * 1.01, "low": c * 0.99, "close": c,
            "tick_volume": rng.integers(1, 1000, n), "spread": [None if i % 3 else i for i in range(n)],
            "real_volume": np.zeros(n, dtype=np.int64)}, schema_overrides={"spread": pl.Int64}))
    return pl.concat(frames).with_columns(pl.col("time").dt.cast_time_unit("us")).select(list(BAR_SCHEMA))


def feature_frame(b: pl.DataFrame, tf="D1", created=T0) -> pl.DataFrame:
    from mt5lab.features.build import feature_rows

    return feature_rows(b, tf, created=created)


def test_migration_is_idempotent_and_matches_the_catalog(store):
    first, second = store.migrate(), store.migrate()
    assert first == second and first.tables == 2 * len(TIMEFRAMES)
    with store.connect() as conn:
        available = conn.execute("SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'"
                                 ).fetchone()[0]
        if not available:  # CI proves the plain path
            assert first.timescale is False
        cols = conn.execute("SELECT column_name, data_type FROM information_schema.columns "
                            "WHERE table_schema = 'features' AND table_name = 'h1' ORDER BY ordinal_position"
                            ).fetchall()
        bar_cols = conn.execute("SELECT column_name, data_type FROM information_schema.columns WHERE "
                                "table_schema = 'market_data' AND table_name = 'ohlcv_d1' ORDER BY ordinal_position"
                                ).fetchall()
        pk = conn.execute("SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = "
                          "'features.d1'::regclass AND indisprimary").fetchone()[0]
        idx = conn.execute("SELECT schemaname, tablename, indexdef FROM pg_indexes "
                           "WHERE schemaname IN ('market_data', 'features')").fetchall()
    assert [c for c, _ in cols] == list(FEATURE_COLUMNS)
    types = dict(cols)
    assert all(types[c] == "timestamp with time zone" for c in ("time", "event_timestamp", "created_timestamp"))
    assert all(types[f.name] == ("double precision" if f.dtype == "Float64" else "bigint") for f in FEATURES)
    assert [c for c, _ in bar_cols] == [c for c in BAR_SCHEMA if c != "timeframe"]
    assert dict(bar_cols)["time"] == "timestamp with time zone"
    assert pk.endswith("(symbol, \"time\")")
    for tf in TIMEFRAMES:  # every table: its primary key and its time index
        bar_idx = [d for s, t, d in idx if (s, t) == ("market_data", f"ohlcv_{tf.lower()}")]
        feat_idx = [d for s, t, d in idx if (s, t) == ("features", tf.lower())]
        assert len(bar_idx) == 2 and any('USING brin ("time")' in d for d in bar_idx), bar_idx
        assert len(feat_idx) == 2 and any("USING btree (event_timestamp)" in d for d in feat_idx), feat_idx


def test_bars_round_trip_exactly_with_hostile_symbols(store):
    b = pl.concat([bars(["EURUSD", *ODD], 50), bars(["EURUSD", "GBPUSD"], 30, "H1")])
    res = store.write_bars(b)
    assert (res.inserted, res.updated, res.unchanged) == (b.height, 0, 0)
    for tf in ("D1", "H1"):
        want = b.filter(pl.col("timeframe") == tf).sort(["symbol", "time"])
        assert store.read_bars(tf).equals(want)
    got = store.read_bars("D1", [ODD[0], ODD[1]])
    assert sorted(got["symbol"].unique()) == sorted(ODD[:2]) and got.height == 100
    with store.connect() as conn:  # the table the "symbol" names is still there
        assert conn.execute("SELECT count(*) FROM market_data.ohlcv_d1").fetchone()[0] == 50 * 7
    assert store.timeframes() == ["D1", "H1"]
    assert store.counts() == {"bars_d1": 350, "bars_h1": 60}


def test_bar_reads_filter_on_half_open_time_range(store):
    b = bars(["A", "B"], 10)
    store.write_bars(b)
    start, end = T0 + timedelta(days=2), T0 + timedelta(days=5)
    got = store.read_bars("D1", ["B"], start, end)
    assert got["time"].to_list() == [T0 + timedelta(days=d) for d in (2, 3, 4)]
    assert store.read_bars("D1", []).height == 0
    assert store.read_bars("W1").schema == pl.Schema(BAR_SCHEMA)


def test_upsert_counts_and_fresh_overlap_split(store):
    b = bars(["A", "B", "C"], 40)
    store.write_bars(b.filter(pl.col("time") >= T0 + timedelta(days=10)))
    # Next write: A's older history (fresh: before the stored range), B unchanged, C with two revised
    # bars and five new ones after its stored range, and a new symbol D.
    revised = (pl.col("symbol") == "C") & pl.col("time").is_in([T0 + timedelta(days=12), T0 + timedelta(days=20)])
    nxt = pl.concat([
        b.filter((pl.col("symbol") == "A") & (pl.col("time") < T0 + timedelta(days=10))),
        b.filter((pl.col("symbol") == "B") & (pl.col("time") >= T0 + timedelta(days=10))),
        b.filter((pl.col("symbol") == "C") & (pl.col("time") >= T0 + timedelta(days=10)))
         .with_columns(pl.when(revised).then(pl.col("close") * 1.5).otherwise(pl.col("close")).alias("close")),
        bars(["D"], 5, start=T0 + timedelta(days=3)),
        bars(["C"], 5, start=T0 + timedelta(days=40), seed=9),
    ])
    res = store.write_bars(nxt)
    assert (res.inserted, res.updated, res.unchanged) == (10 + 5 + 5, 2, 30 + 28)
    want = (pl.concat([b.filter(pl.col("time") >= T0 + timedelta(days=10)), nxt])
            .unique(["symbol", "time"], keep="last").sort(["symbol", "time"]))
    assert store.read_bars("D1").equals(want)
    again = store.write_bars(nxt)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, nxt.height)


def test_unchanged_feature_rows_keep_created_timestamp(store):
    b = bars(["A", "B"], 260)
    f1 = feature_frame(b, created=T0)
    assert store.write_features("D1", f1).inserted == f1.height
    got = store.read_features("D1")
    assert got.equals(f1.select(list(feature_schema())).sort(["symbol", "event_timestamp"]))
    later = T0 + timedelta(days=400)
    changed = (pl.col("symbol") == "B") & (pl.col("time") == b["time"].max())
    f2 = feature_frame(b, created=later).with_columns(
        pl.when(changed).then(pl.col("rsi_14") + 1).otherwise(pl.col("rsi_14")).alias("rsi_14"))
    res = store.write_features("D1", f2)
    assert (res.inserted, res.updated, res.unchanged) == (0, 1, f2.height - 1)
    got = store.read_features("D1")
    assert got.filter(changed)["created_timestamp"].to_list() == [later]
    assert (got.filter(~changed)["created_timestamp"] == T0).all()
    assert got.filter(changed)["rsi_14"].to_list() == f2.filter(changed)["rsi_14"].to_list()


def test_feature_reads_columns_ranges_and_latest(store):
    b = bars(["A", "B", *ODD[:2]], 30)
    f = feature_frame(b)
    store.write_features("D1", f)
    end = f["event_timestamp"].min() + timedelta(days=4)
    got = store.read_features("D1", ["A"], end=end, columns=["symbol", "event_timestamp", "close"])
    assert got.columns == ["symbol", "event_timestamp", "close"] and got.height == 5  # end inclusive
    latest = store.latest_features("D1")
    want = f.sort("event_timestamp").group_by("symbol").last().sort("symbol")
    assert latest.select(FEATURE_NAMES).equals(want.select(FEATURE_NAMES))
    assert latest["symbol"].to_list() == sorted(b["symbol"].unique().to_list())
    assert store.latest_features("D1", [ODD[1]])["symbol"].to_list() == [ODD[1]]
    with pytest.raises(ValueError, match="unknown feature columns"):
        store.read_features("D1", columns=["close; DROP TABLE x"])


def test_a_failed_ingest_stores_nothing(store):
    good = bars(["A"], 20)
    t0 = store.write_token("D1")
    store.write_bars(good)
    before, token = store.counts(), store.write_token("D1")
    assert token == t0 + 1 and store.write_token("H1") == 0
    # D1 is written first (timeframes go in sorted order), then H1 fails: D1 must be rolled back too.
    bad = pl.concat([bars(["B"], 20, "D1"),
                     bars(["C"], 5, "H1").with_columns(pl.lit(None, pl.Float64).alias("close"))])
    with pytest.raises(StoreError, match="rolled back, nothing stored") as err:
        store.write_bars(bad)
    assert "\n" not in str(err.value)
    assert store.counts() == before
    dup = pl.concat([good.head(2), good.head(1)])
    with pytest.raises(StoreError, match="bars D1: duplicate key symbol=A, time=2021-01-04"):
        store.write_bars(dup)
    assert store.counts() == before
    assert store.write_token("D1") == token  # the rolled-back writes did not move the token


def test_wrong_database_is_a_clear_store_error(db):
    from mt5lab.storage.postgres import PostgresStore

    st = PostgresStore("127.0.0.1", 5432, db + "_nope", "postgres", "", "disable")
    with pytest.raises(StoreError) as err:
        st.read_bars("D1")
    msg = str(err.value)
    assert msg.startswith("PostgreSQL at 127.0.0.1:5432 (user 'postgres'") and "does not exist" in msg


def test_lock_is_reentrant_and_exclusive(store):
    from mt5lab.storage.pg_schema import LOCK_CLASS, LOCK_WRITER

    def held_elsewhere() -> bool:
        with store.connect() as conn:
            got = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_CLASS, LOCK_WRITER)).fetchone()[0]
            return not got

    def backend() -> int:
        from mt5lab.storage import pg_lock

        (conn,) = [c for k, c in pg_lock._IDLE.items() if k[-2] == LOCK_WRITER and k[:3] == store._server]
        return conn.info.backend_pid

    assert not held_elsewhere()
    with store.lock():
        assert held_elsewhere()
        with store.lock():  # nested use in one thread (e.g. build inside a locked update)
            assert held_elsewhere()
        assert held_elsewhere()
    assert not held_elsewhere()
    kept = backend()  # the unlocked session is kept for the next taker, not a new backend per lock
    with store.lock():
        assert held_elsewhere()
    assert not held_elsewhere() and backend() == kept
    store.connect().execute("SELECT pg_terminate_backend(%s)", (kept,))  # the server drops it
    with store.lock():  # replaced by a new session, transparently
        assert held_elsewhere()
    assert not held_elsewhere() and backend() != kept


def test_a_forked_child_exiting_leaves_the_parents_lock_alone(store):
    """A child forked after the writer lock's session was kept (a gunicorn worker, an os.fork helper)
    runs the exit handlers when it ends: the parent's kept session, and a lock held on it, survive."""
    import atexit
    import os

    from mt5lab.storage.pg_schema import LOCK_CLASS, LOCK_WRITER

    with store.lock():  # afterwards its session is kept idle
        pass
    pid = os.fork()
    if pid == 0:  # the child: what a normal interpreter exit runs, then out without unwinding
        try:
            time.sleep(0.3)
            atexit._run_exitfuncs()
        finally:
            os._exit(0)
    with store.lock():  # the parent re-takes the lock on the kept session while the child exits
        os.waitpid(pid, 0)
        with store.connect() as other:
            taken = other.execute("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_CLASS, LOCK_WRITER)).fetchone()[0]
        assert taken is False  # still the parent's


def test_feast_source_points_at_the_features_table(store):
    src = store.feast_source("h1")
    assert (src.name, src.get_table_query_string()) == ("features_h1", "features.h1")
    assert (src.timestamp_field, src.created_timestamp_column) == ("event_timestamp", "created_timestamp")
    with store.connect() as conn:
        conn.execute(f"SELECT event_timestamp, created_timestamp FROM {src.get_table_query_string()} LIMIT 0")


def test_same_results_as_the_local_store(store, tmp_path):
    """The two profiles are one interface: the same writes give the same reads and counts."""
    from mt5lab.storage.local import LocalStore

    local = LocalStore(tmp_path)
    b = bars(["A", "B"], 80)
    steps = [b.head(100), b, b.with_columns(pl.col("close") * 1.0001)]
    for step in steps:
        r1, r2 = store.write_bars(step), local.write_bars(step)
        assert r1 == r2
        f = feature_frame(step.sort(["symbol", "time"]), created=T0 + timedelta(days=step.height))
        assert store.write_features("D1", f) == local.write_features("D1", f)
    assert store.read_bars("D1").equals(local.read_bars("D1"))
    assert store.read_features("D1").equals(local.read_features("D1"))
    assert store.latest_features("D1").equals(local.latest_features("D1"))
    assert store.counts() == local.counts()


def test_bulk_copy_encodes_nulls_nan_and_extremes(store):
    """Binary COPY: NaN, +-inf, nulls, int64 extremes, sub-second and pre-2000 times, exactly."""
    times = [datetime(1970, 1, 1, tzinfo=UTC), datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
             datetime(2000, 1, 1, tzinfo=UTC), datetime(2038, 1, 19, 3, 14, 8, 1, tzinfo=UTC)]
    b = pl.DataFrame({"symbol": "Z", "timeframe": "M1", "time": times,
                      "open": [float("nan"), float("inf"), -float("inf"), 1e-308],
                      "high": [1.0, 2.0, 3.0, 4.0], "low": [0.0, 0.0, 0.0, 0.0], "close": [1.0] * 4,
                      "tick_volume": [0, 2**63 - 1, -(2**63), 5], "spread": [None, 1, None, 2],
                      "real_volume": [0, 0, 0, 0]}, schema=BAR_SCHEMA)
    store.write_bars(b)
    got = store.read_bars("M1")
    assert got.select(pl.exclude("open")).equals(b.select(pl.exclude("open")))
    assert np.isnan(got["open"][0]) and got["open"].to_list()[1:] == [float("inf"), -float("inf"), 1e-308]
    with psycopg.connect(host="127.0.0.1", port=5432, dbname=store.database, user="postgres") as conn:
        assert conn.execute("SELECT count(*) FROM market_data.ohlcv_m1 WHERE spread IS NULL").fetchone()[0] == 2


def test_materialize_to_redis_writes_only_changes_and_matches_offline(tmp_path, monkeypatch):
    """Redis skips a write whose event timestamp is not newer than the stored one; a revised latest
    bar has the same timestamp. mt5lab's materialize must still rewrite it, and only it."""
    from mt5lab.feast_repo import store as store_mod
    from mt5lab.feast_repo.store import apply
    from mt5lab.features.build import build
    from mt5lab.online.feast_read import online_frame
    from mt5lab.online.materialize import materialize
    from mt5lab.storage import open_store
    from mt5lab.testing.sandbox import postgres_profile_env
    from tests.conftest import require_service

    require_service("PostgreSQL", "127.0.0.1", 5432)
    monkeypatch.setenv("MT5LAB_DATA_DIR", str(tmp_path / "data"))
    with postgres_profile_env():
        store_mod._STORES.clear()
        try:
            st = open_store("postgres")
            b = bars(["A", "B", "C"], 300)
            st.write_bars(b)
            build(st, progress=False)
            apply("postgres", "D1")
            assert materialize(st, "postgres", "D1", progress=False).written == 3
            assert materialize(st, "postgres", "D1", progress=False).written == 0
            last_b = (pl.col("symbol") == "B") & (pl.col("time") == b["time"].max())
            st.write_bars(b.filter(last_b).with_columns(pl.col("close") * 1.01, pl.col("high") * 1.02))
            build(st, progress=False)
            assert materialize(st, "postgres", "D1", progress=False).written == 1
            off = st.latest_features("D1").sort("symbol")
            on = online_frame(["A", "B", "C"], "D1", "postgres")  # Feast's get_online_features
            assert on["close"].tolist()[1] == pytest.approx(b.filter(last_b)["close"][0] * 1.01, rel=1e-15)
            for name in FEATURE_NAMES:
                want = [None if v is None else v for v in off[name].to_list()]
                got = [None if v is None or v != v else v for v in on[name].tolist()]
                assert got == want, name
            # mt5lab writes Feast's own bytes: after Feast's materialize, nothing differs.
            from datetime import datetime as dt

            import redis

            redis.Redis(host=os.environ["MT5LAB_REDIS_HOST"], port=int(os.environ["MT5LAB_REDIS_PORT"]),
                        password=os.environ["MT5LAB_REDIS_PASSWORD"]).flushdb()
            store_mod.feature_store("postgres", "D1").materialize(T0, dt.now(UTC))
            assert materialize(st, "postgres", "D1", progress=False).written == 0
            assert materialize(st, "postgres", "D1", full=True, progress=False).written == 3
        finally:
            store_mod._STORES.clear()
