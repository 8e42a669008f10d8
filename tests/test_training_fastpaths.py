"""The fast paths of the point-in-time join, each against Feast's own get_historical_features:
the PostgreSQL join split into many groups and parallel connections, its fallback for a row that
breaks the availability rule, the binary COPY reader against literal values, and the local
mirror's symbol runs.

The oracles are Feast (``feast_historical``) and literal values typed into SQL, never the code
under test.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from mt5lab.errors import StoreError
from mt5lab.training.assemble import training_set
from mt5lab.training.pit_feast import compare, feast_historical
from tests.test_training import SYNTH, random_entities, synthetic_bars


def _synthetic_store(profile: str):
    """The SYNTH bars and their feature rows written to a new store of ``profile``: (store, bars)."""
    from mt5lab.features.build import feature_rows
    from mt5lab.storage import open_store

    bars = pl.concat([synthetic_bars(s, **kw) for s, kw in SYNTH.items()])
    store = open_store(profile)
    with store.lock():
        store.write_bars(bars)
        store.write_features("D1", feature_rows(bars, "D1"))
    return store, bars


@pytest.fixture(scope="module")
def pg(tmp_path_factory):
    """The synthetic D1 store of tests/test_training.py on the postgres profile (fresh database)."""
    from contextlib import ExitStack

    from mt5lab.feast_repo import store as store_mod
    from mt5lab.feast_repo.store import apply
    from tests.conftest import require_service

    require_service("PostgreSQL", "127.0.0.1", 5432)
    from mt5lab.testing.sandbox import postgres_profile_env

    mp, stack = pytest.MonkeyPatch(), ExitStack()
    mp.setenv("MT5LAB_DATA_DIR", str(tmp_path_factory.mktemp("pit_fast") / "data"))
    stack.enter_context(postgres_profile_env())
    store_mod._STORES.clear()
    try:
        store, bars = _synthetic_store("postgres")
        apply("postgres", "D1")
        yield {"store": store, "bars": bars}
    finally:
        store_mod._STORES.clear()
        stack.close()
        mp.undo()


def test_groups_and_parallel_connections_equal_feast(pg, monkeypatch):
    from mt5lab.training import pit_sql

    edf = random_entities(pg["bars"], 31)
    monkeypatch.setattr(pit_sql, "GROUP_ROWS", 7)  # ~40 result rows (arrays) ...
    monkeypatch.setattr(pit_sql, "PARALLEL_MIN_ROWS", 1)  # ... over two connections
    ours = training_set(edf, profile="postgres", progress=False)
    assert ours["row_id"].tolist() == edf["row_id"].tolist()
    assert compare(ours, feast_historical(edf, profile="postgres")) == []
    polars_out = training_set(pl.from_pandas(edf), profile="postgres", to="polars", progress=False)
    assert polars_out.height == len(edf) and polars_out["rsi_14"].null_count() > 0


def test_a_row_breaking_the_availability_rule_falls_back_to_feasts_ordering(pg, monkeypatch):
    """A row whose event_timestamp is not time + 1 day (written around mt5lab, by SQL) is seen by
    the guard when it is the probe's match; the join is then redone in Feast's ordering."""
    from mt5lab.training import pit_sql

    store, bars = pg["store"], pg["bars"]
    t = bars.filter(pl.col("symbol") == "AAA")["time"][200]
    calls = []
    exact = pit_sql.point_in_time_exact
    monkeypatch.setattr(pit_sql, "point_in_time_exact", lambda *a: calls.append(1) or exact(*a))
    with store.connect() as conn:
        conn.execute("UPDATE features.d1 SET event_timestamp = event_timestamp - interval '1 hour' "
                     "WHERE symbol = 'AAA' AND time = %s", (t,))
    try:
        close = t + timedelta(days=1)
        times = [close - timedelta(minutes=30), close + timedelta(hours=1), close - timedelta(hours=2)]
        import pandas as pd

        edf = pd.DataFrame({"symbol": "AAA", "event_timestamp": pd.to_datetime(times, utc=True),
                            "row_id": np.arange(3)})
        edf["event_timestamp"] = edf["event_timestamp"].astype("datetime64[ns, UTC]")
        ours = training_set(edf.iloc[1:].reset_index(drop=True), profile="postgres", progress=False)
        assert calls, "the guard did not see the rule-breaking row"
        assert compare(ours, feast_historical(edf.iloc[1:].reset_index(drop=True), profile="postgres")) == []
    finally:
        with store.connect() as conn:
            conn.execute("UPDATE features.d1 SET event_timestamp = time + interval '1 day' "
                         "WHERE symbol = 'AAA' AND time = %s", (t,))


def test_write_features_refuses_a_row_off_the_availability_rule(pg):
    from mt5lab.features.build import feature_rows

    b = synthetic_bars("ZZZ", 30, seed=9)
    f = feature_rows(b, "D1")
    bad = f.with_columns(pl.when(pl.int_range(pl.len()) == 7).then(pl.col("event_timestamp") + timedelta(hours=1))
                         .otherwise(pl.col("event_timestamp")).alias("event_timestamp"))
    with pytest.raises(StoreError, match=r"symbol=ZZZ.*is not time \+ D1.*nothing stored"):
        pg["store"].write_features("D1", bad)
    assert pg["store"].read_features("D1", ["ZZZ"]).height == 0


def test_binary_copy_reader_against_literals(pg):
    from mt5lab.storage.pg_copy import binary_array, binary_tuples

    q = ("COPY (SELECT g, ARRAY[[g * 1.5, '-0'::float8], ['Infinity', 2.5e-300]]::float8[], NULL::int8, "
         "ARRAY[g, -g, 9007199254740993]::int8[], ARRAY[]::int8[] FROM generate_series(1, 3) g) "
         "TO STDOUT (FORMAT binary)")
    with pg["store"].connect() as conn, conn.cursor() as cur, cur.copy(q) as cp:
        got = list(binary_tuples(cp))
    assert len(got) == 3
    for g, fields in enumerate(got, start=1):
        assert int.from_bytes(fields[0], "big") == g and fields[2] is None
        vals, shape = binary_array(fields[1], 8, ">f8")
        assert shape == (2, 2)
        assert vals.astype(float).tolist() == [g * 1.5, -0.0, float("inf"), 2.5e-300]
        assert np.signbit(vals[1])
        ints, shape = binary_array(fields[3], 8, ">i8")
        assert shape == (3,) and ints.tolist() == [g, -g, 9007199254740993]
        assert binary_array(fields[4], 8, ">i8")[0].size == 0
    with pg["store"].connect() as conn, conn.cursor() as cur, \
            cur.copy("COPY (SELECT ARRAY[1, NULL]::int8[]) TO STDOUT (FORMAT binary)") as cp:
        (fields,) = list(binary_tuples(cp))
    with pytest.raises(ValueError, match="nulls"):
        binary_array(fields[0], 8, ">i8")


def test_binary_copy_reader_any_split_of_the_stream(pg):
    """The reader gives the same literal values whether a tuple arrives in one chunk (as
    PostgreSQL sends it) or split anywhere (header, length words and values cut in pieces)."""
    from mt5lab.storage.pg_copy import binary_array, binary_tuples

    q = ("COPY (SELECT g, ARRAY[g * 0.25, -g * 1e300]::float8[], ARRAY[g, 9007199254740993 - g]::int8[] "
         "FROM generate_series(1, 4) g) TO STDOUT (FORMAT binary)")
    with pg["store"].connect() as conn, conn.cursor() as cur, cur.copy(q) as cp:
        stream = b"".join(bytes(c) for c in cp)
    for size in (1, 3, 7, 40, len(stream)):
        chunks = [stream[i:i + size] for i in range(0, len(stream), size)]
        got = [[bytes(f) for f in fields] for fields in binary_tuples(iter(chunks))]
        assert len(got) == 4, size
        for g, fields in enumerate(got, start=1):
            assert int.from_bytes(fields[0], "big") == g
            assert binary_array(fields[1], 8, ">f8")[0].tolist() == [g * 0.25, -g * 1e300]
            assert binary_array(fields[2], 8, ">i8")[0].tolist() == [g, 9007199254740993 - g]
    with pg["store"].connect() as conn, conn.cursor() as cur, \
            cur.copy("COPY (SELECT ARRAY[1, 2]::int4[]) TO STDOUT (FORMAT binary)") as cp:
        (fields,) = list(binary_tuples(cp))
    with pytest.raises(ValueError, match="8 bytes"):
        binary_array(fields[0], 8, ">i8")


@pytest.fixture(scope="module")
def local_store(tmp_path_factory):
    """The synthetic D1 store of tests/test_training.py on the local profile."""
    from mt5lab.feast_repo import store as store_mod

    mp = pytest.MonkeyPatch()
    mp.setenv("MT5LAB_DATA_DIR", str(tmp_path_factory.mktemp("pit_local_fast") / "data"))
    mp.delenv("MT5LAB_PROFILE", raising=False)
    mp.delenv("MT5LAB_PIT_MIRROR", raising=False)
    store_mod._STORES.clear()
    try:
        store, bars = _synthetic_store("local")
        yield {"store": store, "bars": bars}
    finally:
        store_mod._STORES.clear()
        mp.undo()


def test_mirror_search_key_path_equals_the_read_features_path(local_store, monkeypatch):
    """The mirror's precomputed search key (every kind of decision time: before the first bar, past
    ttl expiry, unknown symbols, duplicates) gives the frame of the plain read_features path,
    which tests/test_training.py checks against Feast; sub-microsecond times take the generic
    search and agree too."""
    import pandas as pd

    from mt5lab.training import pit, pit_mirror

    edf = random_entities(local_store["bars"], 17, n=400)
    sub_us = edf.assign(event_timestamp=edf["event_timestamp"] + pd.to_timedelta(
        np.arange(len(edf)) % 3 * 499, unit="ns"))  # 0, 499, 998 ns past the microsecond
    monkeypatch.setenv("MT5LAB_PIT_MIRROR", "0")
    plain = [training_set(f, profile="local", progress=False) for f in (edf, sub_us)]
    monkeypatch.setenv("MT5LAB_PIT_MIRROR", "1")
    d = pit_mirror.mirror_dir(local_store["store"], "D1")
    assert pit_mirror.search_key(d) is not None
    generic = pit.match_rows
    monkeypatch.setattr(pit, "match_rows", lambda *a: pytest.fail("search key not used"))
    fast = training_set(edf, profile="local", progress=False)
    pd.testing.assert_frame_equal(fast, plain[0], check_exact=True)
    assert fast.iloc[:, 3:].isna().all(axis=1).any() and fast["close"].notna().any()  # both kinds
    monkeypatch.setattr(pit, "match_rows", generic)
    pd.testing.assert_frame_equal(training_set(sub_us, profile="local", progress=False), plain[1],
                                  check_exact=True)


def test_symbol_runs_only_for_keys_in_the_stores_order():
    from mt5lab.training.pit_mirror import symbol_runs

    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    ts = [t0 + timedelta(days=d) for d in (0, 1, 2, 0, 5)]
    ok = pl.DataFrame({"symbol": ["A", "A", "A", "B", "B"], "event_timestamp": ts})
    assert symbol_runs(ok).rows() == [("A", 3), ("B", 2)]
    assert symbol_runs(ok.reverse()) is None  # not sorted by symbol
    tie = ok.with_columns(pl.Series("event_timestamp", [ts[0], ts[1], ts[1], ts[3], ts[4]]))
    assert symbol_runs(tie) is None  # a repeated time inside a symbol
    back = ok.with_columns(pl.Series("event_timestamp", [ts[0], ts[2], ts[1], ts[3], ts[4]]))
    assert symbol_runs(back) is None  # time stepping back inside a symbol
