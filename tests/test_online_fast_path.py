"""The online read's fast path (one round trip per basket, columns decoded at once, the pandas frame
built from blocks) gives exactly Feast's ``get_online_features`` answer, on both profiles.

Feast is the oracle for every value: for each symbol of a basket (duplicates and a symbol the store
lacks included) and each output (pandas, polars, dict, rows), values, nulls and NaNs must be the ones
Feast's ``to_dict()`` returns, and the pandas frame must equal, dtypes included, the frame
``pd.DataFrame`` builds from Feast's answer the ordinary way.
"""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mt5lab.bars.samples import load_sample
from mt5lab.catalog import BY_NAME, FEATURE_NAMES, VIEW_NAMES

BASKET = ["GOOG", "NOSUCH", "HALF", "GOOG", "NANS"]
NAN_FEATURES = ("sma_5", "rsi_14")  # stored as a NaN double (not unset) for NANS


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b and type(a) is type(b)


@pytest.fixture
def stored(profile):
    """GOOG through ``update``; HALF: only two views written; NANS: a NaN double and an unset value."""
    from feast.protos.feast.types.Value_pb2 import Value

    from mt5lab.feast_repo.store import apply, feature_store
    from mt5lab.online.tables import entity_key
    from mt5lab.online.update import update

    apply(None, "D1")
    update(load_sample("GOOG"), calendar="equity")
    fs = feature_store(None, "D1")
    store, cfg = fs.provider.online_store, fs.config
    when = pd.Timestamp("2013-03-01", tz="UTC").to_pydatetime()
    for i, name in enumerate(VIEW_NAMES):
        fv = fs.get_feature_view(name)
        feats = [f.name for f in fv.features]
        for sym in ("HALF", "NANS"):
            if sym == "HALF" and i % 3:
                continue
            vals = {}
            for f in feats:
                if sym == "NANS" and f in NAN_FEATURES:
                    vals[f] = Value(double_val=float("nan"))
                elif sym == "NANS" and f == "close":
                    vals[f] = Value()  # unset: null
                elif BY_NAME[f].dtype == "Int64":
                    vals[f] = Value(int64_val=7 * (i + 1))
                else:
                    vals[f] = Value(double_val=0.25 * (i + 1))
            store.online_write_batch(cfg, fv, [(entity_key(sym), vals, when, None)], None)
    return {"fs": fs, "now": when + timedelta(days=2)}


def test_every_output_is_feasts_answer(stored):
    from mt5lab.online.reader import online_features

    fs, now = stored["fs"], stored["now"]
    feast = fs.get_online_features(features=fs.get_feature_service("mt5_v1"),
                                   entity_rows=[{"symbol": s} for s in BASKET]).to_dict()
    rows = online_features(BASKET, now=now, output="rows")
    assert rows.symbols == BASKET
    assert list(rows.values) == list(FEATURE_NAMES)
    for f in FEATURE_NAMES:
        for i, sym in enumerate(BASKET):
            want = feast[f][i]
            if sym == "NOSUCH":
                want = None  # Feast's SQLite answers None, its Redis store too (values unset)
            assert _same(rows.values[f][i], want), (f, sym, rows.values[f][i], want)
    # The cases this test exists for are really there (Feast's answer, not ours).
    nans = BASKET.index("NANS")
    assert all(math.isnan(feast[f][nans]) for f in NAN_FEATURES) and feast["close"][nans] is None
    assert feast["close"][0] is not None and feast["sma_200"][0] is not None
    status = {v: rows.status[v] for v in VIEW_NAMES}
    half = BASKET.index("HALF")
    assert [status[v][half] for v in VIEW_NAMES] == ["fresh" if i % 3 == 0 else "missing"
                                                     for i in range(len(VIEW_NAMES))]
    assert all(status[v][1] == "missing" and rows.event_timestamps[v][1] is None for v in VIEW_NAMES)
    assert rows.row_status() == ["fresh", "missing", "missing", "fresh", "fresh"]

    as_dict = online_features(BASKET, now=now, output="dict")
    assert as_dict["symbol"] == BASKET
    for f in FEATURE_NAMES:
        assert all(_same(a, b) for a, b in zip(as_dict[f], rows.values[f], strict=True)), f

    # pandas: the same frame pd.DataFrame builds the ordinary way from Feast's values.
    got = online_features(BASKET, now=now)
    cols: dict[str, object] = {"symbol": BASKET}
    for f in FEATURE_NAMES:
        vals = [None if s == "NOSUCH" else feast[f][i] for i, s in enumerate(BASKET)]
        cols[f] = pd.array(vals, dtype="Int64" if BY_NAME[f].dtype == "Int64" else "float64")
    for v in VIEW_NAMES:
        cols[f"{v}__event_timestamp"] = pd.to_datetime(rows.event_timestamps[v], utc=True)
        cols[f"{v}__status"] = status[v]
    cols["status"] = rows.row_status()
    pd.testing.assert_frame_equal(got, pd.DataFrame(cols), check_exact=True)
    # Each frame has its own axes: renaming one frame's index or columns leaves the next frame's alone.
    got.index.name, got.columns.name = "row", "column"
    again = online_features(BASKET, now=now)
    assert again.index.name is None and again.columns.name is None
    got.index.name = got.columns.name = None
    # A frame from blocks behaves as any other: consolidation, copies, row selection.
    assert got.copy()._mgr.nblocks <= got._mgr.nblocks and got.iloc[[0, 3]]["close"].nunique() == 1

    # polars: nulls stay null, NaNs stay NaN.
    pol = online_features(BASKET, now=now, output="polars")
    assert pol.columns == list(got.columns)
    assert pol.schema["close"] == pl.Float64 and pol.schema["cdl_doji"] == pl.Int64
    assert pol.schema["price_action__event_timestamp"] == pl.Datetime("ns", "UTC")
    assert pol["close"].null_count() == 2 and pol["sma_5"].is_nan().sum() == 1
    for f in FEATURE_NAMES:
        assert all(_same(a, b) for a, b in zip(pol[f].to_list(), rows.values[f], strict=True)), f
    stamps = pol["ohlcv_features__event_timestamp"].to_list()
    assert stamps == [t if t is None else t for t in rows.event_timestamps["ohlcv_features"]]


def test_expired_and_future_are_masked_in_every_output(stored):
    from mt5lab.catalog import ttl
    from mt5lab.online.reader import online_features

    fs = stored["fs"]
    want = fs.get_online_features(features=["ohlcv_features:close"], entity_rows=[{"symbol": "GOOG"}]
                                  ).to_dict()["close"][0]
    assert want is not None
    event = pd.Timestamp("2013-03-02", tz="UTC").to_pydatetime()  # GOOG's last bar closes then
    late = event + ttl("D1") + timedelta(seconds=1)
    for output in ("pandas", "polars", "dict"):
        out = online_features(["GOOG"], now=late, output=output)
        close = out["close"][0] if output != "polars" else out["close"].to_list()[0]
        assert close is None or (isinstance(close, float) and np.isnan(close)), output
        kept = online_features(["GOOG"], now=late, output=output, keep_expired=True)
        kept_close = kept["close"][0] if output != "polars" else kept["close"].to_list()[0]
        assert kept_close == want, output
    early = online_features(["GOOG"], now=event - timedelta(seconds=1), output="dict")
    assert early["status"] == ["future"] and early["close"] == [None]


def test_unknown_output_is_refused(stored):
    from mt5lab.online.reader import online_features

    with pytest.raises(ValueError, match="output must be one of"):
        online_features("GOOG", output="arrow")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), st.just(b""), st.floats(allow_nan=True, allow_infinity=True),
                          st.integers(-(2**63), 2**63 - 1)), max_size=40))
def test_decode_is_the_value_protos(items):
    """The column decoders give, per element, what Feast's ``Value`` proto parse gives."""
    from feast.protos.feast.types.Value_pb2 import Value

    from mt5lab.online.decode import doubles, integers
    from mt5lab.online.tables import to_python

    def encode(x):
        if x is None or x == b"":
            return x
        return (Value(double_val=x) if isinstance(x, float) else Value(int64_val=x)).SerializeToString()

    raw = [encode(x) for x in items]
    want = [None if not b else to_python(Value.FromString(b)) for b in raw]
    vals, null = doubles(raw)
    for i, w in enumerate(want):
        assert null[i] == (w is None)
        if w is not None:
            assert _same(float(vals[i]), float(w)), (items[i], vals[i], w)
    ints = [x for x in items if not isinstance(x, float)]
    raw = [encode(x) for x in ints]
    vals, null = integers(raw)
    assert [None if m else int(v) for v, m in zip(vals, null, strict=True)] == \
        [None if not b else to_python(Value.FromString(b)) for b in raw]


def test_a_basket_is_one_round_trip(stored, profile):
    """Redis: one HMGET per symbol for all six views (Feast: one per symbol per view), counted by the
    server itself; SQLite: one statement for all views (Feast: one per view), counted by SQLite's trace."""
    from mt5lab.online.reader import reader

    fs = stored["fs"]
    basket = ["GOOG", "HALF", "NANS", "NOSUCH"]
    r = reader(None, "D1")
    r.read(basket)  # warm: commands packed, statement prepared
    if profile == "postgres":
        client = fs.provider.online_store._get_client(fs.config.online_store)

        def hmgets() -> int:
            return int(client.info("commandstats").get("cmdstat_hmget", {}).get("calls", 0))

        before = hmgets()
        r.read(basket)
        mine = hmgets() - before
        fs.get_online_features(features=fs.get_feature_service("mt5_v1"),
                               entity_rows=[{"symbol": s} for s in basket])
        feast = hmgets() - before - mine
        assert (mine, feast) == (len(basket), len(basket) * len(VIEW_NAMES))
    else:
        conn = fs.provider.online_store._get_conn(fs.config)
        seen: list[str] = []
        conn.set_trace_callback(seen.append)
        try:
            r.read(basket)
            mine = len(seen)
            fs.get_online_features(features=fs.get_feature_service("mt5_v1"),
                                   entity_rows=[{"symbol": s} for s in basket])
        finally:
            conn.set_trace_callback(None)
        selects = [q for q in seen if q.lstrip().upper().startswith("SELECT")]
        assert mine == 1 and len(selects) == 1 + len(VIEW_NAMES), seen


def test_server_body_composed_from_parts_is_the_whole_encoded(stored):
    """``route.render`` (shared per-view parts) is byte for byte the encoding of the whole answer
    (the form the Feast-parity tests in test_serve_parity check against Feast's own server)."""
    from mt5lab.online.reader import reader
    from mt5lab.online.route import _finite, dumps, render, response

    rows = reader(None, "D1").read(BASKET, now=stored["now"])
    for full in (False, True):
        payload = response(rows, full)
        for col in payload["results"]:
            col["values"] = _finite(col["values"])
        assert render(rows, full) == dumps(payload)
    assert b'"NaN"' in render(rows) and b'"OUTSIDE_MAX_AGE"' not in render(rows)


@pytest.mark.services
def test_redis_reader_keeps_the_main_threads_connection_only(postgres_profile):
    """Redis: the main thread keeps one pooled connection across reads; a connection the server
    killed is replaced within the read; an error reply drops the connection (no unread reply stays
    on it); other threads check one out per read and give it back (30 short-lived threads leave no
    connection behind); a forked child reads on its own socket, never its parent's; a reader that
    goes gives its connection back."""
    import os
    import threading

    from redis.exceptions import ResponseError

    from mt5lab.feast_repo.store import apply, feature_store
    from mt5lab.online.reader import reader
    from mt5lab.online.update import update
    from tests.conftest import reset_caches

    apply(None, "D1")
    update(load_sample("GOOG"), calendar="equity")
    fs = feature_store(None, "D1")
    want = fs.get_online_features(features=["ohlcv_features:close"], entity_rows=[{"symbol": "GOOG"}]
                                  ).to_dict()["close"][0]
    assert want is not None
    r = reader(None, "D1")
    now = pd.Timestamp("2013-03-03", tz="UTC").to_pydatetime()

    def close() -> float:
        return r.read(["GOOG"], now=now).values["close"][0]

    def port() -> int:
        return r._reads._kept[0]._sock.getsockname()[1]

    assert close() == want
    first = port()
    assert close() == want and port() == first  # kept, not checked out again
    admin = fs.provider.online_store._get_client(fs.config.online_store)
    assert admin.client_kill_filter(_type="normal", skipme=True) >= 1  # the server drops it
    assert close() == want and port() != first  # replaced inside the read

    key = r._reads.rows.key("GOOG")
    saved = admin.dump(key)
    admin.delete(key)
    admin.set(key, b"not a hash")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        close()
    assert r._reads._kept == []  # dropped with the error reply
    admin.restore(key, 0, saved, replace=True)
    assert close() == want

    def clients() -> int:
        return len(admin.client_list())

    pool = r._reads.client.connection_pool
    seen: list = []

    def in_thread():
        seen.append(close())

    close()
    before = clients()
    for _ in range(30):  # threads come and go, as a server's worker pool's do
        t = threading.Thread(target=in_thread)
        t.start()
        t.join()
    assert seen == [want] * 30
    assert clients() <= before + 1 and len(pool._in_use_connections) == 1  # the main thread's only

    parent = port()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report (its value is right, its socket's port), exit at once
        try:
            ok = close() == want
            os.write(write_end, f"{int(ok)} {port()}".encode())
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    ok, child = os.read(read_end, 64).decode().split()
    os.close(read_end)
    assert ok == "1" and int(child) != parent
    assert close() == want and port() == parent  # the parent's socket is untouched

    import gc

    reset_caches()  # the reader goes: its kept connection goes back to the pool
    r = None
    gc.collect()
    assert len(pool._in_use_connections) == 0
