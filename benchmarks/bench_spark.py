"""Builds and training sets: the local engine vs Spark ``local[2]`` vs a standalone cluster, one run.

For each size (default 1M and 5M bars; ``--sizes 1,5,20`` adds 20M) the same synthetic bars are
stored once; then each engine
* builds the 42 features (local: :func:`mt5lab.features.build.build` into ``features.parquet``;
  Spark: :func:`mt5lab.spark.build.spark_build`, TA-Lib per symbol in ``applyInArrow``, committed
  Parquet dataset), and
* computes a point-in-time training set of ``--entities`` rows over them (local: mt5lab's join;
  Spark: Feast's ``SparkOfflineStore``, the result kept on the cluster and forced with Spark's
  ``noop`` sink).

Printed: wall time, throughput (bars/s, rows/s), per-core throughput, the ratio local / Spark at
each size, and the crossover size where Spark wins, from a linear fit ``t = a + b * n`` per engine.
Spark session and cluster start-up are printed separately, not counted. The cluster is a master
and 2 workers x 1 core on loopback (on a 2-core machine: the same cores as ``local[2]``).

    python benchmarks/bench_spark.py [--sizes 1,5] [--symbols-per-m 100] [--entities 100000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import synthetic_bars

os.environ.setdefault("TQDM_DISABLE", "1")
CORES = 2


def stores(sizes: list[float], per_m: int, tmp: Path) -> dict[float, Path]:
    from mt5lab.storage.local import LocalStore

    roots = {}
    for m in sizes:
        symbols = max(1, round(per_m * m))
        bars = synthetic_bars(symbols, round(1_000_000 * m / symbols), seed=int(m * 1000))
        root = tmp / f"{m}M"
        store = LocalStore(root)
        with store.lock():
            store.write_bars(bars)
        roots[m] = root
        del bars
    return roots


def entities(root: Path, rows: int) -> pl.DataFrame:
    from mt5lab.storage.local import LocalStore

    bars = LocalStore(root).read_bars("D1")
    rng = np.random.default_rng(7)
    pick = rng.integers(0, bars.height, rows)
    offset = pl.Series(rng.integers(3_600, 48 * 3_600, rows) * 1_000_000).cast(pl.Duration("us"))
    t = bars["time"].gather(pick) + offset  # decisions 1-48 h after a bar's open
    return pl.DataFrame({"symbol": bars["symbol"].gather(pick), "event_timestamp": t})


def run_local(root: Path, edf: pl.DataFrame) -> tuple[float, float]:
    from mt5lab.features.build import build
    from mt5lab.storage.local import LocalStore
    from mt5lab.training.assemble import training_set

    store = LocalStore(root)
    t0 = time.perf_counter()
    build(store, ["D1"], progress=False)
    t1 = time.perf_counter()
    out = training_set(edf, "mt5_v1", store=store, to="polars", progress=False)
    t2 = time.perf_counter()
    assert out.height == edf.height
    return t1 - t0, t2 - t1


def run_spark(spark, root: Path, edf: pl.DataFrame) -> tuple[float, float]:
    from mt5lab.spark.build import spark_build
    from mt5lab.spark.dataset import SparkDatasetStore
    from mt5lab.spark.feast_config import spark_feature_store
    from mt5lab.spark.training import training_set

    store = SparkDatasetStore(root)
    t0 = time.perf_counter()
    spark_build(store, ["D1"], spark=spark)
    t1 = time.perf_counter()
    print(f"  build {t1 - t0:.1f} s", flush=True)
    spark_feature_store(store, "D1", "local")  # registry set-up is not the join
    sdf = spark.createDataFrame(edf.to_pandas())  # an entity set already on the cluster
    sdf = sdf.cache()
    sdf.count()
    t2 = time.perf_counter()
    out = training_set(sdf, "mt5_v1", to="spark", store=store, spark=spark)
    out.write.format("noop").mode("overwrite").save()
    t3 = time.perf_counter()
    sdf.unpersist()
    return t1 - t0, t3 - t2


def crossover(sizes: list[float], local: list[float], other: list[float]) -> str:
    if len(sizes) < 2:
        return "n/a (one size)"
    n = np.array(sizes, float) * 1e6
    bl, al = np.polyfit(n, local, 1)
    bs, as_ = np.polyfit(n, other, 1)
    if any(o < lo for o, lo in zip(other, local, strict=True)):
        first = next(s for s, o, lo in zip(sizes, other, local, strict=True) if o < lo)
        return f"Spark faster from {first}M bars (measured)"
    if bs <= 0:
        return "not determinable: Spark's times fall with size (its first job carries the warm-up)"
    if bs >= bl:
        return (f"none on this machine: Spark's marginal cost {bs * 1e6:.2f} s/M bars >= local "
                f"{bl * 1e6:.2f} s/M bars (same 2 cores; Spark wins only by adding cores)")
    return f"~{(as_ - al) / (bl - bs) / 1e6:.0f}M bars (extrapolated)"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1,5", help="Millions of bars, comma-separated (e.g. 0.25,1,5,20).")
    ap.add_argument("--symbols-per-m", type=int, default=100, help="Symbols per million bars.")
    ap.add_argument("--entities", type=int, default=100_000)
    args = ap.parse_args()
    sizes = [float(s) for s in args.sizes.split(",")]
    os.environ["MT5LAB_SPARK_CONF"] = "spark.sql.shuffle.partitions=8;spark.default.parallelism=2"
    tmp = Path(tempfile.mkdtemp(prefix="bench_spark_"))
    os.environ["MT5LAB_DATA_DIR"] = str(tmp / "data")
    try:
        print(f"storing synthetic D1 bars: {', '.join(f'{m}M' for m in sizes)} ...", flush=True)
        roots = stores(sizes, args.symbols_per_m, tmp)
        edfs = {m: entities(roots[m], args.entities) for m in sizes}
        results: dict[str, dict[float, tuple[float, float]]] = {"local": {}, "spark local[2]": {}, "cluster 2x1": {}}
        for m in sizes:
            results["local"][m] = run_local(roots[m], edfs[m])
            print(f"local {m}M: build {results['local'][m][0]:.1f} s, training set {results['local'][m][1]:.1f} s",
                  flush=True)
        from mt5lab.spark import feast_config
        from mt5lab.spark.cluster import standalone_cluster
        from mt5lab.spark.session import spark_session, stop_session

        for name in ("spark local[2]", "cluster 2x1"):
            t0 = time.perf_counter()
            with standalone_cluster(2, 1, "2g") if name.startswith("cluster") else _nothing() as cluster:
                spark = spark_session(cluster.master_url if cluster else "local[2]",
                                      extra={"spark.executor.memory": "1500m", "spark.driver.memory": "2g"})
                print(f"{name}: start-up {time.perf_counter() - t0:.1f} s (not counted)", flush=True)
                for m in sizes:
                    results[name][m] = run_spark(spark, roots[m], edfs[m])
                    print(f"{name} {m}M: build {results[name][m][0]:.1f} s, training set "
                          f"{results[name][m][1]:.1f} s", flush=True)
                stop_session()
                feast_config.clear_cache()
        report(sizes, results, args.entities)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def report(sizes, results, n_entities: int) -> None:
    print("\n| bars | engine | build s | bars/s | bars/s/core | training set s | rows/s | local/engine (build, ts) |")
    print("|---|---|---|---|---|---|---|---|")
    for m in sizes:
        lb, lt = results["local"][m]
        for name, by in results.items():
            b, t = by[m]
            cores = 1 if name == "local" else CORES
            print(f"| {m}M | {name} | {b:.1f} | {m * 1e6 / b:,.0f} | {m * 1e6 / b / cores:,.0f} | {t:.1f} | "
                  f"{n_entities / t:,.0f} | {lb / b:.2f}x, {lt / t:.2f}x |")
    for name in ("spark local[2]", "cluster 2x1"):
        print(f"crossover build, {name}: "
              f"{crossover(sizes, [results['local'][m][0] for m in sizes], [results[name][m][0] for m in sizes])}")
        print(f"crossover training set, {name}: "
              f"{crossover(sizes, [results['local'][m][1] for m in sizes], [results[name][m][1] for m in sizes])}")


if __name__ == "__main__":
    main()
