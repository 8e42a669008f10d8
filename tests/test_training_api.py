"""Training-set API: clear errors, labels against a numpy oracle, the row-count guard, manifests,
Feast SavedDataset registration and the ``training-set`` CLI verb."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from mt5lab.catalog import FEATURES, WARMUP_TOLERANCE, catalog_hash, ttl
from mt5lab.errors import MaxLossExceeded, TrainingSetError
from mt5lab.features.build import feature_rows
from mt5lab.training.assemble import training_set
from mt5lab.training.labels import parse_label
from mt5lab.training.manifest import load_training_set, manifest_path, read_manifest, save_training_set
from mt5lab.training.refs import resolve

D1 = timedelta(days=1)
T0 = datetime(2022, 3, 7, tzinfo=UTC)
N = {"AAA": 120, "BBB": 80}


def _bars() -> pl.DataFrame:
    frames = []
    for k, (sym, n) in enumerate(N.items()):
        rng = np.random.default_rng(k)
        c = 20 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
        frames.append(pl.DataFrame({
            "symbol": sym, "timeframe": "D1", "time": [T0 + i * D1 for i in range(n)], "open": c * 0.999,
            "high": c * 1.01, "low": c * 0.99, "close": c, "tick_volume": rng.integers(10, 99, n),
            "spread": np.ones(n, dtype=np.int64), "real_volume": np.zeros(n, dtype=np.int64)},
            schema_overrides={"time": pl.Datetime("us", "UTC")}))
    return pl.concat(frames)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from mt5lab.feast_repo import store as store_mod
    from mt5lab.feast_repo.store import apply
    from mt5lab.storage import open_store

    mp = pytest.MonkeyPatch()
    mp.setenv("MT5LAB_DATA_DIR", str(tmp_path_factory.mktemp("pit_api") / "data"))
    mp.delenv("MT5LAB_PROFILE", raising=False)
    store_mod._STORES.clear()
    s = open_store("local")
    bars = _bars()
    with s.lock():
        s.write_bars(bars)
        s.write_features("D1", feature_rows(bars, "D1"))
    apply("local", "D1")
    yield {"store": s, "bars": bars}
    store_mod._STORES.clear()
    mp.undo()


def _ent(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["symbol", "event_timestamp"]).assign(
        event_timestamp=lambda d: pd.to_datetime(d["event_timestamp"], utc=True))


# --- errors -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("features", "message"), [
    ("mt5_v2", "unknown feature service 'mt5_v2'"),
    (["nope:close"], "unknown feature view 'nope'"),
    (["ohlcv_features:sma_5"], "it is in view 'technical_indicators_ma'"),
    (["ohlcv_features:close", "ohlcv_features:close"], "requested twice"),
    (["close"], "bad feature ref 'close'"),
    ([], "no features requested"),
])
def test_feature_ref_errors(features, message):
    with pytest.raises(TrainingSetError, match=message):
        resolve(features)


def test_refs_follow_feast_column_order():
    sel = resolve(["price_action:cdl_doji", "ohlcv_features:close", "price_action:hl_range"])
    assert sel.output_names() == ["cdl_doji", "hl_range", "close"]
    assert sel.output_names(True) == ["price_action__cdl_doji", "price_action__hl_range", "ohlcv_features__close"]
    assert resolve("mt5_v1").output_names() == [f.name for f in FEATURES]


def test_entity_errors_name_source_row_and_rule():
    naive = pd.DataFrame({"symbol": ["A"], "event_timestamp": pd.to_datetime(["2022-01-01"])})
    with pytest.raises(TrainingSetError, match="entities: column 'event_timestamp' is timezone-naive"):
        training_set(naive)
    with pytest.raises(TrainingSetError, match="timezone-naive"):
        training_set(pl.from_pandas(naive))
    with pytest.raises(TrainingSetError, match="missing column.*event_timestamp"):
        training_set(pd.DataFrame({"symbol": ["A"]}))
    with pytest.raises(TrainingSetError, match="row 1: .*not a tz-aware datetime .*2022-01-01T00:00Z"):
        training_set(pd.DataFrame({"symbol": ["A"], "event_timestamp": ["2022-01-01T00:00Z"]}))
    mixed = pd.DataFrame({"symbol": ["A", "B"], "event_timestamp": [datetime(2022, 1, 1, tzinfo=UTC),
                                                                     datetime(2022, 1, 2)]},  # noqa: DTZ001 - refused
                         dtype=object)
    with pytest.raises(TrainingSetError, match="entities: row 2: .*not a tz-aware datetime"):
        training_set(mixed)
    nulls = _ent([("A", "2022-01-01"), ("B", "2022-01-02"), (None, "2022-01-03")])
    with pytest.raises(TrainingSetError, match="entities: row 3: symbol is null"):
        training_set(nulls)
    with pytest.raises(TrainingSetError, match="clash"):
        training_set(_ent([("A", "2022-01-01")]).assign(close=1.0))
    with pytest.raises(TrainingSetError, match="to='numpy'"):
        training_set(_ent([("A", "2022-01-01")]), to="numpy")


@pytest.mark.parametrize("name", ["fwd_return_0", "fwd_ret_5", "fwd_return_-1", "fwd_direction_", "close"])
def test_label_name_errors(name):
    with pytest.raises(TrainingSetError, match="unknown label"):
        parse_label(name)


# --- labels --------------------------------------------------------------------------------------------

def test_labels_match_numpy_oracle(store):
    bars = store["bars"]
    times = []
    for sym, n in N.items():
        closes = [T0 + (i + 1) * D1 for i in range(n)]
        times += [(sym, closes[0] - timedelta(seconds=1)), (sym, closes[0]), (sym, closes[10]),
                  (sym, closes[10] + timedelta(hours=7)), (sym, closes[n - 4]), (sym, closes[n - 3]),
                  (sym, closes[-1] + 30 * D1)]
    times.append(("ZZZ", T0 + 5 * D1))
    edf = _ent(times)
    out = training_set(edf, ["ohlcv_features:close"], labels=["fwd_return_1", "fwd_return_3",
                                                               "fwd_direction_3"], to="polars", progress=False)
    assert out.columns[-4:] == ["fwd_return_1", "fwd_return_3", "fwd_direction_3", "label_end_timestamp"]
    assert out.schema["fwd_direction_3"] == pl.Int64
    for i, (sym, t) in enumerate(times):
        c = bars.filter(pl.col("symbol") == sym)["close"].to_numpy()
        ct = [T0 + (j + 1) * D1 for j in range(len(c))]
        k = max((j for j, x in enumerate(ct) if x <= t), default=None)  # last bar closed at t
        r = out.row(i, named=True)
        for h in (1, 3):
            want = None if k is None or k + h >= len(c) else float(np.log(c[k + h] / c[k]))
            got = r[f"fwd_return_{h}"]
            assert (got is None and want is None) or got == pytest.approx(want, rel=1e-14, abs=0), (sym, t, h)
        want3 = None if k is None or k + 3 >= len(c) else int(np.sign(np.log(c[k + 3] / c[k])))
        assert r["fwd_direction_3"] == want3
        assert r["label_end_timestamp"] == (None if want3 is None else ct[k + 3])


def test_empty_frame_and_nanosecond_boundaries(store):
    empty = training_set(_ent([]), labels=["fwd_return_1"], progress=False)
    assert len(empty) == 0 and list(empty.columns)[:2] == ["symbol", "event_timestamp"]
    assert "sma_200" in empty.columns and "fwd_return_1" in empty.columns
    c = store["bars"].filter(pl.col("symbol") == "AAA")["close"].to_list()
    close10, last = pd.Timestamp(T0 + 11 * D1), pd.Timestamp(T0 + N["AAA"] * D1)
    ns = pd.Timedelta(1, "ns")
    t = pd.Series([close10 - ns, close10, last + ttl("D1"), last + ttl("D1") + ns]).dt.tz_convert("UTC")
    out = training_set(pd.DataFrame({"symbol": "AAA", "event_timestamp": t}), ["ohlcv_features:close"],
                       progress=False)
    assert out["close"].tolist()[:3] == [c[9], c[10], c[-1]] and np.isnan(out["close"].iloc[3])


def test_mirror_follows_every_write(data_dir):
    """The memory-mapped mirror is a cache: a write to the store is seen by the next join."""
    from mt5lab.storage import open_store

    s = open_store("local")
    bars = _bars()
    feats = feature_rows(bars, "D1")
    s.write_features("D1", feats)
    edf = _ent([("AAA", T0 + 11 * D1)])
    before = training_set(edf, ["ohlcv_features:close"], progress=False)["close"].iloc[0]
    changed = feats.with_columns(pl.when((pl.col("symbol") == "AAA") & (pl.col("time") == T0 + 10 * D1))
                                 .then(pl.col("close") + 1.0).otherwise(pl.col("close")).alias("close"))
    assert s.write_features("D1", changed).updated == 1
    after = training_set(edf, ["ohlcv_features:close"], progress=False)["close"].iloc[0]
    assert after == before + 1.0
    assert len(list((data_dir / "cache" / "pit" / "D1").iterdir())) == 1  # the stale mirror is gone


# --- the row-count guard ------------------------------------------------------------------------------

def test_a_join_that_loses_rows_raises(store, monkeypatch):
    """Row-count guards: a label join or a feature gather that lost a row is an error, never a
    silently shorter training set."""
    import mt5lab.training.pit as pit

    edf = _ent([("AAA", T0 + 5 * D1), ("BBB", T0 + 9 * D1), ("AAA", T0 + 7 * D1)])
    real_asof, real_gather = pl.DataFrame.join_asof, pit._gather
    with monkeypatch.context() as m:
        m.setattr(pl.DataFrame, "join_asof", lambda self, *a, **kw: real_asof(self, *a, **kw).head(-1))
        with pytest.raises(MaxLossExceeded, match="label join"):
            training_set(edf, ["ohlcv_features:close"], labels=["fwd_return_1"], progress=False)
    with monkeypatch.context() as m:
        m.setattr(pit, "_gather", lambda *a: real_gather(*a).head(-1))
        with pytest.raises(MaxLossExceeded, match="gather"):
            training_set(edf, progress=False)
    assert len(training_set(edf, progress=False)) == 3


def test_duplicate_store_rows_break_ties_by_created_timestamp(store, tmp_path):
    """Two feature rows with the same event_timestamp: the later created_timestamp wins (Feast)."""
    from mt5lab.training.pit import _keys_of_store

    class Dup:
        profile = "local"

        def read_features(self, tf, symbols=None, start=None, end=None, columns=None):
            f = store["store"].read_features(tf, symbols, start, end)
            extra = f.filter(pl.col("symbol") == "AAA").head(3).with_columns(
                pl.col("close") + 1000.0, pl.col("created_timestamp") + timedelta(seconds=5))
            both = pl.concat([f, extra]).sort(["symbol", "event_timestamp"])
            return both.select(columns) if columns else both

    keys, _, raw = _keys_of_store(Dup(), "D1", None, None, None)
    assert raw == keys.height + 3
    edf = _ent([("AAA", T0 + D1), ("AAA", T0 + 2 * D1 + timedelta(hours=1)), ("AAA", T0 + 5 * D1)])
    out = training_set(edf, ["ohlcv_features:close"], store=Dup(), to="polars", progress=False)
    c = store["bars"].filter(pl.col("symbol") == "AAA")["close"].to_list()
    assert out["close"].to_list() == [c[0] + 1000.0, c[1] + 1000.0, c[4]]


# --- manifest, hash, SavedDataset -------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:Retrieving datasets is an experimental feature")
def test_manifest_and_content_hash(store, tmp_path):
    edf = _ent([("AAA", T0 + 30 * D1), ("BBB", T0 + 40 * D1 + timedelta(hours=3)), ("ZZZ", T0 + 5 * D1)])
    df = training_set(edf, labels=["fwd_return_5"], progress=False)
    m1 = save_training_set(df, tmp_path / "a.parquet", saved_dataset="pit_api_set")
    m2 = save_training_set(training_set(edf, labels=["fwd_return_5"], progress=False), tmp_path / "b.parquet")
    assert m1["content_hash"] == m2["content_hash"]
    m3 = save_training_set(training_set(edf.iloc[:2], labels=["fwd_return_5"], progress=False),
                           tmp_path / "c.parquet")
    assert m3["content_hash"] != m1["content_hash"]
    side = json.loads(manifest_path(tmp_path / "a.parquet").read_text())
    assert side == read_manifest(tmp_path / "a.parquet")
    assert side["feature_service"] == "mt5_v1" and side["catalog_hash"] == catalog_hash()
    assert side["view_ttls_seconds"]["price_action"] == ttl("D1").total_seconds()
    assert side["warmup_tolerance"] == WARMUP_TOLERANCE
    assert side["rows"]["total"] == 3 and side["rows"]["all_features_null"] == 1
    assert side["labels"] == ["fwd_return_5"]
    assert side["data_range"]["event_timestamp_min"].startswith("2022-03-12")
    assert {"mt5lab", "feast", "ta-lib", "polars"} <= set(side["versions"])
    back, man = load_training_set(tmp_path / "a.parquet")
    pd.testing.assert_frame_equal(back, df, check_exact=True)
    pm = save_training_set(training_set(edf, labels=["fwd_return_5"], to="polars", progress=False),
                           tmp_path / "p.parquet")
    assert pm["content_hash"] != m1["content_hash"]  # Int64 columns, not pandas' float64
    assert load_training_set(tmp_path / "p.parquet", to="pandas")[1] == pm  # verifies either way
    # altering the data (metadata kept) is detected
    table = pq.read_table(tmp_path / "a.parquet")
    bad = table.set_column(table.column_names.index("close"), "close",
                           pq.read_table(tmp_path / "a.parquet").column("close").fill_null(1.0))
    pq.write_table(bad, tmp_path / "a.parquet")
    with pytest.raises(TrainingSetError, match="content hash"):
        load_training_set(tmp_path / "a.parquet")
    from mt5lab.feast_repo.store import feature_store

    ds = feature_store("local", "D1").get_saved_dataset("pit_api_set")
    assert ds.tags["content_hash"] == m1["content_hash"] and ds.feature_service_name == "mt5_v1"
    assert len(ds.to_df()) == 3  # Feast reads the saved file back


# --- CLI ---------------------------------------------------------------------------------------------------

def test_cli_symbols_mode_writes_manifest_carrying_parquet(store, tmp_path):
    from mt5lab.cli import cli

    out = tmp_path / "ts.parquet"
    res = CliRunner().invoke(cli, ["training-set", "--symbols", "AAA,BBB", "--start", "2022-04-01",
                                   "--end", "2022-05-01T00:00:00Z", "--every", "5", "--label", "fwd_return_5",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    closes = [T0 + (i + 1) * D1 for i in range(max(N.values()))]
    window = [t for t in closes if datetime(2022, 4, 1, tzinfo=UTC) <= t <= datetime(2022, 5, 1, tzinfo=UTC)]
    expected = 2 * len(window[::5])  # both symbols cover the window
    man = read_manifest(out)
    assert man["rows"]["total"] == expected and man["labels"] == ["fwd_return_5"]
    df = pl.read_parquet(out)
    assert df.height == expected and "fwd_return_5" in df.columns and df["close"].null_count() == 0
    assert man["content_hash"] in res.output


def test_cli_entities_file_errors_name_the_file(store, tmp_path):
    from mt5lab.cli import cli

    naive = tmp_path / "naive.csv"
    naive.write_text("symbol,event_timestamp\nAAA,2022-04-01T00:00:00\n")
    res = CliRunner().invoke(cli, ["training-set", "--entities", str(naive), "--out", str(tmp_path / "x.parquet")])
    assert res.exit_code == 2 and "naive.csv: row 1" in res.output and "no UTC offset" in res.output
    garbled = tmp_path / "bad.csv"
    garbled.write_text("symbol,event_timestamp\nAAA,2022-04-01T00:00:00Z\nBBB,yesterday\n")
    res = CliRunner().invoke(cli, ["training-set", "--entities", str(garbled), "--out", str(tmp_path / "x.parquet")])
    assert res.exit_code == 2 and "bad.csv: row 2" in res.output
    good = tmp_path / "good.csv"
    good.write_text("symbol,event_timestamp,row_id\nAAA,2022-04-01T00:00:00Z,7\nBBB,2022-04-02T12:00:00+02:00,8\n")
    res = CliRunner().invoke(cli, ["training-set", "--entities", str(good), "--features",
                                   "ohlcv_features:close", "--out", str(tmp_path / "g.parquet")])
    assert res.exit_code == 0, res.output
    df = pl.read_parquet(tmp_path / "g.parquet")
    assert df.columns == ["symbol", "event_timestamp", "row_id", "close"] and df["close"].null_count() == 0
