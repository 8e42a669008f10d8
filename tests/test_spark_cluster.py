"""The Spark engine on a standalone cluster: a master and two workers on loopback, started here and
stopped by PID (:mod:`mt5lab.spark.cluster`). The executors do the work (the driver runs no task in
standalone mode); results equal the references of ``tests/test_spark.py``. A worker killed with
SIGKILL in the middle of a build: the job retries on the surviving worker, or fails with one line,
and readers never see a half-written dataset.
"""

from __future__ import annotations

import threading
import time

import pandas as pd
import polars as pl
import pytest

from mt5lab.errors import StoreError
from tests.test_spark import check_build, fill, require_spark, synth_bars
from tests.test_training import random_entities, synthetic_bars

pytestmark = [pytest.mark.spark, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster_env(tmp_path_factory):
    require_spark()
    from mt5lab.spark import feast_config
    from mt5lab.spark.cluster import standalone_cluster
    from mt5lab.spark.dataset import SparkDatasetStore
    from mt5lab.spark.session import spark_session, stop_session
    from tests.conftest import reset_caches

    root = tmp_path_factory.mktemp("spark_cluster") / "data"
    mp = pytest.MonkeyPatch()
    mp.setenv("MT5LAB_DATA_DIR", str(root))
    mp.delenv("MT5LAB_PROFILE", raising=False)
    mp.setenv("MT5LAB_SPARK_CONF", "spark.sql.shuffle.partitions=4;spark.default.parallelism=2")
    stop_session()
    reset_caches()
    feast_config.clear_cache()
    try:
        with standalone_cluster(workers=2, cores=1, memory="1g") as cluster:
            spark = spark_session(cluster.master_url, extra={"spark.executor.memory": "512m",
                                                             "spark.task.maxFailures": "4"})
            deadline = time.monotonic() + 120
            while _executors(spark) < 2 and time.monotonic() < deadline:
                time.sleep(0.5)
            bars = synth_bars()
            fill(root, bars)
            yield {"spark": spark, "cluster": cluster, "root": root, "bars": bars,
                   "store": SparkDatasetStore(root)}
            stop_session()
    finally:
        feast_config.clear_cache()
        reset_caches()
        mp.undo()


def _executors(spark) -> int:
    """Executors registered with the driver (the driver itself not counted)."""
    return spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1


def test_cluster_build_and_training_set_equal_the_references(cluster_env):
    from mt5lab.spark.build import spark_build
    from mt5lab.spark.training import training_set
    from mt5lab.training.assemble import training_set as local_ts

    spark, cluster = cluster_env["spark"], cluster_env["cluster"]
    assert spark.sparkContext.master == cluster.master_url
    assert cluster.alive_workers() == 2 and _executors(spark) == 2
    res = spark_build(cluster_env["store"], ["D1"], spark=spark)
    assert res["D1"].inserted == cluster_env["bars"].height
    check_build(cluster_env["store"].read_features("D1"), cluster_env["bars"])
    edf = random_entities(cluster_env["bars"], 41, n=80)
    got = training_set(edf, "mt5_v1", spark=spark)
    pd.testing.assert_frame_equal(got, local_ts(edf, "mt5_v1", profile="local", progress=False), check_exact=True)


def test_worker_killed_mid_build_retries_or_fails_cleanly(cluster_env, tmp_path, monkeypatch):
    import mt5lab.spark.build as build
    from mt5lab.spark.dataset import SparkDatasetStore, current, dataset_root

    spark, cluster = cluster_env["spark"], cluster_env["cluster"]
    bars = pl.concat([synthetic_bars(f"K{i:02d}", n=1200, seed=100 + i) for i in range(12)])
    store = SparkDatasetStore(tmp_path / "data")
    with store.lock():
        store.write_bars(bars)
    outcome: dict = {}
    gate, marks = tmp_path / "gate", tmp_path / "running"
    marks.mkdir()
    real = build.group_features

    def gated(timeframe, created):  # the real group function, held at a gate once it runs on an executor
        inner, gate_s, marks_s = real(timeframe, created), str(gate), str(marks)

        def run(table):
            import os
            import time as t

            open(os.path.join(marks_s, str(os.getpid())), "w").close()
            while not os.path.exists(gate_s):
                t.sleep(0.05)
            return inner(table)

        return run

    monkeypatch.setattr(build, "group_features", gated)
    coalesce = "spark.sql.adaptive.coalescePartitions.enabled"  # keep the 4 shuffle partitions apart
    spark.conf.set(coalesce, "false")

    def run():
        try:
            outcome["result"] = build.spark_build(store, ["D1"], spark=spark)
        except StoreError as exc:
            outcome["error"] = str(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    deadline = time.monotonic() + 300
    # two tasks held at the gate at once: each executor has one core, so both executors are mid-task
    while len(list(marks.iterdir())) < 2 and worker.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert worker.is_alive() and len(list(marks.iterdir())) >= 2, (outcome, cluster.logs())
    cluster.kill_worker(0)
    gate.touch()  # the surviving executor's tasks, and any retried ones, run to the end
    worker.join(900)
    spark.conf.unset(coalesce)
    assert not worker.is_alive()
    print(f"worker 0 killed mid-build: {outcome.get('error') or 'retried, committed'}")  # shown by -rP
    names = sorted(p.name for p in dataset_root(store.root, "D1").iterdir()) if dataset_root(
        store.root, "D1").exists() else []
    if "error" in outcome:  # failed: one line, nothing committed, nothing left over
        assert "\n" not in outcome["error"] and "nothing committed" in outcome["error"]
        assert current(store.root, "D1") is None and names == []
    else:  # retried on the surviving worker: complete and equal to the reference
        assert outcome["result"]["D1"].inserted == bars.height
        assert names == sorted(["current", current(store.root, "D1").name])
        check_build(store.read_features("D1"), bars)
