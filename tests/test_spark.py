"""The Spark engine on a real Spark (``local[2]``): build, training sets, materialize, bad input.

One SparkSession for the module, small synthetic data (3 symbols, 580 D1 bars with a long gap).
The references are computed without Spark: :func:`mt5lab.features.compute.compute_features` for the
build, mt5lab's local engine and Feast's file store for training sets, mt5lab's own materialize
for the online store. Without Java or pyspark these tests skip, except under ``CI=true``, where
they fail.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
from polars.testing import assert_series_equal

from mt5lab.catalog import FEATURES
from mt5lab.errors import StoreError, TrainingSetError
from mt5lab.features.compute import compute_features
from tests.test_training import SYNTH, random_entities, synthetic_bars

pytestmark = [pytest.mark.spark, pytest.mark.slow]
EXACT = ("obv", "ad")  # cumulative: bit for bit
RTOL = 1e-9


def require_spark() -> None:
    """Java and pyspark, or skip (a failure under CI=true)."""
    missing = []
    if shutil.which("java") is None:
        missing.append("java (apt-get install openjdk-17-jre-headless)")
    try:
        import pyspark  # noqa: F401
    except ImportError:
        missing.append("pyspark (pip install '.[spark]')")
    if missing:
        msg = "the Spark engine needs " + " and ".join(missing)
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg + " (CI=true: required)")
        pytest.skip(msg)


def synth_bars() -> pl.DataFrame:
    return pl.concat([synthetic_bars(s, **kw) for s, kw in SYNTH.items()])


def fill(root, bars: pl.DataFrame) -> None:
    """Bars into the local store at ``root``, features by the local engine, the catalog applied."""
    from mt5lab.feast_repo.store import apply
    from mt5lab.features.build import build
    from mt5lab.spark.dataset import SparkDatasetStore

    store = SparkDatasetStore(root)
    with store.lock():
        store.write_bars(bars)
    from mt5lab.storage.local import LocalStore

    build(LocalStore(root), ["D1"], progress=False)
    apply("local", "D1")


def check_build(features: pl.DataFrame, bars: pl.DataFrame) -> None:
    """Spark's feature rows against compute_features over the same bars (the reference)."""
    ref = compute_features(bars.sort("symbol", "time"), "D1").sort("symbol", "time")
    got = features.sort("symbol", "time")
    assert got.height == ref.height == bars.height
    assert_series_equal(got["symbol"], ref["symbol"])
    assert_series_equal(got["time"], ref["time"])
    assert_series_equal(got["event_timestamp"], ref["event_timestamp"])
    for f in FEATURES:
        a, b = got[f.name], ref[f.name]
        assert a.dtype == b.dtype, f.name
        assert (a.is_null() == b.is_null()).all(), f.name
        if f.name in EXACT:
            assert np.array_equal(a.to_numpy().view(np.int64) if a.dtype == pl.Float64 else a.to_numpy(),
                                  b.to_numpy().view(np.int64) if b.dtype == pl.Float64 else b.to_numpy()), f.name
        else:
            x, y = a.cast(pl.Float64).to_numpy(), b.cast(pl.Float64).to_numpy()
            assert np.allclose(x, y, rtol=RTOL, atol=0, equal_nan=True), f.name


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A local[2] session; a store with bars, local features, the catalog applied, and a Spark build."""
    require_spark()
    from mt5lab.spark import feast_config
    from mt5lab.spark.build import spark_build
    from mt5lab.spark.dataset import SparkDatasetStore
    from mt5lab.spark.session import spark_session, stop_session
    from tests.conftest import reset_caches

    root = tmp_path_factory.mktemp("spark") / "data"
    mp = pytest.MonkeyPatch()
    mp.setenv("MT5LAB_DATA_DIR", str(root))
    mp.delenv("MT5LAB_PROFILE", raising=False)
    mp.setenv("MT5LAB_SPARK_CONF", "spark.sql.shuffle.partitions=2;spark.default.parallelism=2")
    stop_session()
    reset_caches()
    feast_config.clear_cache()
    spark = spark_session("local[2]")
    bars = synth_bars()
    fill(root, bars)
    store = SparkDatasetStore(root)
    res = spark_build(store, ["D1"], spark=spark)
    yield {"spark": spark, "root": root, "bars": bars, "store": store, "build": res}
    stop_session()
    feast_config.clear_cache()
    reset_caches()
    mp.undo()


def test_build_equals_compute_features(env):
    import pyarrow.parquet as pq

    from mt5lab.spark.dataset import current

    assert env["build"]["D1"].inserted == env["bars"].height
    check_build(env["store"].read_features("D1"), env["bars"])
    files = sorted(current(env["root"], "D1").glob("*.parquet"))
    assert files
    for p in files:  # microsecond UTC instants: what polars and Spark both read
        schema = pq.read_schema(p)
        for c in ("time", "event_timestamp", "created_timestamp"):
            assert str(schema.field(c).type) == "timestamp[us, tz=UTC]", (p.name, c)
        syms = pq.read_table(p, columns=["symbol"])["symbol"].to_pylist()
        assert syms == sorted(syms)  # each file holds whole symbols, in order
    # the other files of a symbol: none (a symbol lives in one file)
    owners = {s: p.name for p in files for s in set(pq.read_table(p, columns=["symbol"])["symbol"].to_pylist())}
    assert set(owners) == set(SYNTH)


def test_training_set_on_spark_equals_local_engine_and_feast(env):
    from mt5lab.spark.training import training_set
    from mt5lab.training.assemble import training_set as local_ts
    from mt5lab.training.pit_feast import compare, feast_historical, file_store_drops

    edf = random_entities(env["bars"], 31, n=120)  # nulls, ttl edges +-1 us, unknown symbols, duplicates
    ours = local_ts(edf, "mt5_v1", profile="local", progress=False)
    got = training_set(edf, "mt5_v1", spark=env["spark"])
    assert got["row_id"].tolist() == edf["row_id"].tolist()  # input order, every row
    pd.testing.assert_frame_equal(got, ours, check_exact=True)
    feature_cols = [c for c in got.columns if c not in edf.columns]
    nulls = got[feature_cols].isna().all(axis=1)
    assert nulls.any() and (~nulls).any() and edf.duplicated(["symbol", "event_timestamp"]).any()
    assert (~edf["symbol"].isin(list(SYNTH))).any()
    # Feast's file store on the same rows: it drops and merges rows (documented); equal on the rest
    feast = feast_historical(edf, "mt5_v1", profile="local")
    assert file_store_drops(got, feast, set(SYNTH), feature_cols) == []
    assert compare(got[got["row_id"].isin(feast["row_id"])], feast) == []
    # the local engine reads the files Spark wrote, with the same answer
    on_spark_files = local_ts(edf, "mt5_v1", store=env["store"], progress=False)
    pd.testing.assert_frame_equal(on_spark_files, ours, check_exact=True)


def test_spark_entity_sets_and_outputs(env):
    from mt5lab.spark.training import training_set
    from mt5lab.training.assemble import training_set as local_ts

    spark = env["spark"]
    edf = random_entities(env["bars"], 32, n=60)
    refs = ["technical_indicators_momentum:rsi_14", "volume_indicators:obv", "ohlcv_features:spread"]
    ours = local_ts(edf, refs, profile="local", full_feature_names=True, to="polars", progress=False)
    sdf = spark.createDataFrame(edf)
    got = training_set(sdf, refs, full_feature_names=True, to="polars", spark=spark)
    assert got.schema["volume_indicators__obv"] == pl.Float64 and got.schema["ohlcv_features__spread"] == pl.Int64
    assert got.equals(ours.with_columns(pl.col("event_timestamp").dt.cast_time_unit("us")))
    # a table name, output kept on the cluster and written by Spark: `mt5lab training-set --engine spark`
    from click.testing import CliRunner

    from mt5lab.cli import cli

    sdf.createOrReplaceTempView("mt5lab_decisions")
    out = env["root"].parent / "train_spark"
    args = ["training-set", "--engine", "spark", "--entities", "mt5lab_decisions", "--full-feature-names",
            "--out", str(out), "--label", "fwd_return_5"] + [a for r in refs for a in ("--features", r)]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    written = pl.read_parquet(out / "*.parquet").sort("row_id")
    assert written.select(got.columns).equals(got)
    assert written["fwd_return_5"].null_count() < written.height  # the CLI's --label reaches Spark
    assert json.loads(Path(f"{out}.manifest.json").read_text())["labels"] == ["fwd_return_5"]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]  # no temporary left


def test_spark_training_set_file_labels_and_manifest_equal_local(env, tmp_path):
    """`training-set --engine spark` (commands.training_set) with labels: the same rows, labels and
    manifest as the local verb's save_training_set (content hash: Spark's order-independent one)."""
    import json

    from mt5lab.spark import commands
    from mt5lab.training.assemble import training_set as local_ts
    from mt5lab.training.manifest import manifest_path, save_training_set

    labels = ["fwd_return_5", "fwd_direction_3"]
    edf = random_entities(env["bars"], 33, n=80)  # ttl edges, unknown symbols, duplicates, end of data
    ours = local_ts(edf, "mt5_v1", labels=labels, profile="local", to="polars", progress=False)
    ours = ours.with_columns(pl.col("event_timestamp").dt.cast_time_unit("us"))  # Spark holds microseconds
    local_man = save_training_set(ours, tmp_path / "local.parquet", features="mt5_v1", timeframe="D1",
                                  labels=labels)
    ents = tmp_path / "entities.parquet"
    pl.from_pandas(edf).with_columns(pl.col("event_timestamp").dt.cast_time_unit("us")).write_parquet(ents)
    out, lines = tmp_path / "train_spark", []
    man = commands.training_set(str(ents), "D1", (), False, str(out), None, lines.append, labels=labels)
    written = pl.read_parquet(out / "*.parquet").sort("row_id")
    assert written.select(ours.columns).equals(ours)  # features and labels, null for null
    assert ours["fwd_return_5"].null_count() > 0 and ours["fwd_direction_3"].is_not_null().any()
    assert json.loads(manifest_path(out).read_text()) == man
    for key in set(local_man) - {"content_hash", "columns"}:
        assert man[key] == local_man[key], key
    assert {c["name"]: c["dtype"] for c in man["columns"]} == {c["name"]: c["dtype"] for c in local_man["columns"]}
    assert man["engine"] == "spark" and man["content_hash"].startswith(f"xxhash64-sum:{len(edf)}:")
    assert lines == [f"{out}: {len(edf)} rows, 42 features, 2 labels, {local_man['rows']['all_features_null']} "
                     f"rows without features; {man['content_hash']} (written by Spark)"]


def test_bad_entity_sets_are_one_line_errors(env):
    from mt5lab.spark.training import training_set

    spark = env["spark"]
    ok = pd.DataFrame({"symbol": ["AAA"], "event_timestamp": pd.to_datetime(["2021-06-01"], utc=True)})
    cases = [
        (ok.drop(columns="symbol"), "missing column(s) symbol"),
        (ok.assign(event_timestamp=ok["event_timestamp"] + pd.Timedelta(nanoseconds=1)), "row 1: event_timestamp"),
        (spark.createDataFrame([("AAA", "2021-06-01")], "symbol string, event_timestamp string"), "must be a TIMESTAMP"),
        (spark.sql("SELECT CAST(NULL AS STRING) AS symbol, current_timestamp() AS event_timestamp"), "symbol is null"),
        ("no_such_table_xyz", "cannot read"),
    ]
    for frame, rule in cases:
        with pytest.raises(TrainingSetError) as err:
            training_set(frame, "mt5_v1", spark=spark)
        assert rule in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_incremental_update_on_the_spark_dataset(env, tmp_path, monkeypatch):
    """Build the history without the last bars on Spark, then `update` them (carried obv/ad)."""
    from mt5lab.online.update import update
    from mt5lab.spark.build import spark_build
    from mt5lab.spark.dataset import SparkDatasetStore

    bars = env["bars"]
    tail = bars.filter(pl.col("symbol") == "AAA").sort("time").tail(5)
    head = bars.join(tail.select("symbol", "time"), on=["symbol", "time"], how="anti")
    store = SparkDatasetStore(tmp_path / "data")
    with store.lock():
        store.write_bars(head)
    spark_build(store, ["D1"], spark=env["spark"])
    monkeypatch.setenv("MT5LAB_DATA_DIR", str(tmp_path / "data"))
    update(tail.drop("timeframe"), timeframe="D1", store=store, online=False, calendar="24x7", server_tz="UTC")
    check_build(store.read_features("D1"), bars)  # obv/ad bit for bit, the rest within tolerance


def test_failed_build_commits_nothing_and_cli_switch(env, tmp_path):
    from click.testing import CliRunner

    from mt5lab.cli import cli
    from mt5lab.spark.build import spark_build
    from mt5lab.spark.dataset import current, dataset_root

    store, root = env["store"], env["root"]
    before = current(root, "D1")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(StoreError) as err:
        spark_build(store, ["D1"], bars_path=str(bad), spark=env["spark"])
    assert "nothing committed" in str(err.value) and "\n" not in str(err.value)
    assert current(root, "D1") == before
    assert sorted(p.name for p in dataset_root(root, "D1").iterdir()) == sorted(["current", before.name])
    # the switch: `mt5lab build --engine spark` commits a new version with the same rows
    res = CliRunner().invoke(cli, ["build", "--engine", "spark", "--timeframe", "D1"])
    assert res.exit_code == 0, res.output
    assert f"D1: {env['bars'].height} feature rows built on Spark" in res.output
    after = current(root, "D1")
    assert after != before and after.is_dir()
    check_build(store.read_features("D1"), env["bars"])
    res = CliRunner().invoke(cli, ["build", "--engine", "sparky"])
    assert res.exit_code != 0 and "sparky" in res.output


@pytest.mark.services
def test_materialize_on_spark_equals_mt5lab_materialize(env):
    """Feast's spark.engine into Redis db 1, mt5lab's materialize into db 0: the same online values."""
    from mt5lab.feast_repo.store import apply, feature_store
    from mt5lab.online.materialize import materialize
    from mt5lab.spark.feast_config import spark_feature_store
    from mt5lab.spark.materialize import spark_materialize
    from mt5lab.testing.sandbox import postgres_profile_env
    from tests.conftest import require_service, reset_caches

    require_service("PostgreSQL", "127.0.0.1", 5432)
    store = env["store"]
    reset_caches()
    with postgres_profile_env() as e:
        apply("postgres", "D1")
        materialize(store, "postgres", "D1", progress=False)
        online = {"type": "redis", "connection_string":
                  f"{e['MT5LAB_REDIS_HOST']}:{e['MT5LAB_REDIS_PORT']},db=1,password={e['MT5LAB_REDIS_PASSWORD']}"}
        res = spark_materialize(store, "postgres", "D1", online_store=online, spark=env["spark"])
        assert res.end == env["store"].latest_features("D1")["event_timestamp"].max()
        rows = [{"symbol": s} for s in [*SYNTH, "UNKNOWN"]]
        fs_a = feature_store("postgres", "D1")
        fs_b = spark_feature_store(store, "D1", "postgres", online)
        a = fs_a.get_online_features(features=fs_a.get_feature_service("mt5_v1"), entity_rows=rows).to_dict()
        b = fs_b.get_online_features(features=fs_b.get_feature_service("mt5_v1"), entity_rows=rows).to_dict()
        assert len(a) == 43 and a == b
        latest = store.latest_features("D1").sort("symbol")
        assert a["close"][:3] == latest["close"].to_list() and a["close"][3] is None
        with pytest.raises(Exception, match="Redis"):
            spark_materialize(store, "local", "D1", spark=env["spark"])
    reset_caches()
