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
each size, and the crossover size where Spark wins, from a linear fit ``t = a + b * n`` per engine,
with what the fit projects for more cores (Spark's marginal cost divided over C cores; the local
engine stays on one machine, at most ``MAX_THREADS`` threads). Spark session and cluster start-up,
and a warm-up build and training set on a tiny store (the first job starts the Python workers and
imports TA-Lib and mt5lab in them), are printed separately, not counted. The cluster is a master and 2 workers x 1 core on loopback (on
a 2-core machine: the same cores as ``local[2]``). Every engine uses 2 cores here: the local engine
computes symbols in ``compute_threads`` threads (2) and polars is multi-threaded.

``--local-sizes`` limits the local engine to some sizes: it holds a timeframe's bars and all its
feature rows in one process (the driver's peak RSS is printed per size), so 20M bars (~20 GB) does
not fit next to other work on a 24 GB machine; its times there are then the fit's, marked "fit".
The training-set entity count is fixed (``--entities``) while bars grow: Feast's Spark join pairs
each entity row with every feature row of its symbol inside the entity set's time range before the
ttl filter, so its cost grows with entities x bars per symbol, not with the rows returned.

``--partition-bars N`` only measures one symbol-partition instead: N bars of one symbol through the
build's group function (:func:`mt5lab.spark.build.group_features`, what each executor task runs)
in a fresh Python process: Arrow in/out sizes, peak RSS, time (H1 spacing; a row is as wide as M1's).

    python benchmarks/bench_spark.py [--sizes 1,5] [--local-sizes 1,5] [--symbols-per-m 100]
                                     [--entities 100000] [--partition-bars 1870000]
"""

from __future__ import annotations

import argparse
import os
import resource
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
CORES = 2  # local[2], the cluster's 2 x 1 core, and the local engine's threads (MAX_THREADS, 2 CPUs)


def load() -> str:
    """The 1/5/15-minute load averages (other work on the machine slows every engine)."""
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def peak_rss_gb() -> float:
    """This process's peak resident set so far, GB (Linux: ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


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


def fit(sizes: list[float], times: list[float]) -> tuple[float, float]:
    """``(a s, b s per M bars)`` of ``t = a + b * n`` (least squares; two points: the line through them)."""
    b, a = np.polyfit(np.array(sizes, float), np.array(times, float), 1)
    return float(a), float(b)


def crossover(sizes: list[float], local: dict[float, float], other: dict[float, float], what: str) -> str:
    """The crossover statement for one engine and one task, with the fitted numbers."""
    ls = sorted(local)
    if len(ls) < 2 or len(sizes) < 2:
        return "n/a (needs two sizes per engine)"
    al, bl = fit(ls, [local[m] for m in ls])
    as_, bs = fit(sizes, [other[m] for m in sizes])
    text = (f"fit local t = {al:.1f} s + {bl:.2f} s/M {what}, Spark t = {as_:.1f} s + {bs:.2f} s/M {what}; ")
    faster = [m for m in sizes if m in local and other[m] < local[m]]
    if faster:
        return text + f"Spark faster from {faster[0]}M bars (measured)"
    if bs <= 0:
        return text + "not determinable: Spark's times fall with size (fixed costs and noise dominate at these sizes)"
    if bs >= bl:
        cores = CORES * bs / bl  # Spark's marginal cost spread over C cores vs the local engine's
        return (text + f"no crossover on {CORES} cores (Spark's marginal cost >= local's); the fit projects "
                f"Spark's marginal cost below local's from ~{cores:.1f} cores (2 x {bs:.2f}/{bl:.2f}), "
                f"assuming Spark's per-core rate holds as cores are added")
    return text + f"~{(as_ - al) / (bl - bs):.0f}M bars (extrapolated)"


PARTITION = """
import resource, sys, time
sys.path.insert(0, sys.argv[2])
from synthetic import synthetic_bars
from mt5lab.spark.build import group_features
from mt5lab.storage.base import now_utc

table = synthetic_bars(1, int(sys.argv[1]), seed=3, timeframe="H1").to_arrow()
run = group_features("H1", now_utc())
run(table.slice(0, 1000))  # imports and TA-Lib loaded: not the partition's memory
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
out = run(table)
t = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"one symbol-partition of {table.num_rows:,} bars: Arrow in {table.nbytes / 2**20:,.0f} MiB, "
      f"out {out.num_rows:,} rows {out.nbytes / 2**20:,.0f} MiB; peak RSS +{(peak - base) / 2**20:.2f} GiB "
      f"over the warm worker ({peak / 2**20:.2f} GiB in all); {t:.1f} s, {table.num_rows / t:,.0f} bars/s")
"""


def partition_memory(bars: int) -> None:
    """Run :data:`PARTITION` in a fresh interpreter (its peak RSS is the partition's alone)."""
    import subprocess

    print(f"{time.strftime('%H:%M:%S')} {load()}", flush=True)
    subprocess.run([sys.executable, "-c", PARTITION, str(bars), str(Path(__file__).parent)], check=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1,5", help="Millions of bars, comma-separated (e.g. 0.25,1,5,20).")
    ap.add_argument("--local-sizes", default=None, help="Sizes the local engine runs (default: all).")
    ap.add_argument("--symbols-per-m", type=int, default=100, help="Symbols per million bars.")
    ap.add_argument("--entities", type=int, default=100_000)
    ap.add_argument("--partition-bars", type=int, default=0, help="Only measure one symbol-partition of N bars.")
    args = ap.parse_args()
    if args.partition_bars:
        return partition_memory(args.partition_bars)
    sizes = [float(s) for s in args.sizes.split(",")]
    local_sizes = [float(s) for s in args.local_sizes.split(",")] if args.local_sizes else sizes
    os.environ["MT5LAB_SPARK_CONF"] = "spark.sql.shuffle.partitions=8;spark.default.parallelism=2"
    tmp = Path(tempfile.mkdtemp(prefix="bench_spark_"))
    os.environ["MT5LAB_DATA_DIR"] = str(tmp / "data")
    try:
        print(f"{time.strftime('%H:%M:%S')} {load()}; {os.cpu_count()} CPUs; storing synthetic D1 bars: "
              f"{', '.join(f'{m}M' for m in sizes)} ({args.symbols_per_m} symbols per M bars) ...", flush=True)
        roots = stores(sizes, args.symbols_per_m, tmp)
        edfs = {m: entities(roots[m], args.entities) for m in sizes}
        warm = stores([0.05], args.symbols_per_m, tmp / "warm")[0.05]
        warm_edf = entities(warm, 200)
        results: dict[str, dict[float, tuple[float, float]]] = {"local": {}, "spark local[2]": {}, "cluster 2x1": {}}
        for m in local_sizes:
            results["local"][m] = run_local(roots[m], edfs[m])
            print(f"local {m}M: build {results['local'][m][0]:.1f} s, training set {results['local'][m][1]:.1f} s; "
                  f"driver peak RSS {peak_rss_gb():.1f} GB; {load()}", flush=True)
        from mt5lab.spark import feast_config
        from mt5lab.spark.cluster import standalone_cluster
        from mt5lab.spark.session import spark_session, stop_session

        for name in ("spark local[2]", "cluster 2x1"):
            t0 = time.perf_counter()
            with standalone_cluster(2, 1, "2g") if name.startswith("cluster") else _nothing() as cluster:
                spark = spark_session(cluster.master_url if cluster else "local[2]",
                                      extra={"spark.executor.memory": "1500m", "spark.driver.memory": "2g"})
                print(f"{name}: start-up {time.perf_counter() - t0:.1f} s (not counted)", flush=True)
                w = run_spark(spark, warm, warm_edf)
                print(f"{name}: warm-up on 0.05M bars: build {w[0]:.1f} s, training set {w[1]:.1f} s "
                      f"(not counted)", flush=True)
                for m in sizes:
                    results[name][m] = run_spark(spark, roots[m], edfs[m])
                    print(f"{name} {m}M: build {results[name][m][0]:.1f} s, training set "
                          f"{results[name][m][1]:.1f} s; {load()}", flush=True)
                stop_session()
                feast_config.clear_cache()
        report(sizes, results, args.entities)
        print(f"{time.strftime('%H:%M:%S')} {load()}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def report(sizes, results, n_entities: int) -> None:
    local = results["local"]
    ls = sorted(local)
    if len(ls) >= 2:  # the local engine's times at sizes it did not run: its fit, marked
        lb_fit, lt_fit = fit(ls, [local[m][0] for m in ls]), fit(ls, [local[m][1] for m in ls])
    print(f"\n{CORES} cores per engine; training sets of {n_entities:,} entity rows (rows/s = entity rows / s)")
    print("| bars | engine | build s | bars/s | bars/s/core | training set s | rows/s | rows/s/core "
          "| local/engine (build, ts) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for m in sizes:
        if m in local:
            lb, lt, mark = *local[m], ""
        elif len(ls) >= 2:
            lb, lt, mark = lb_fit[0] + lb_fit[1] * m, lt_fit[0] + lt_fit[1] * m, " (fit)"
        else:
            lb = lt = None
        for name, by in results.items():
            if m not in by:
                if name == "local" and lb is not None:
                    print(f"| {m}M | local{mark} | {lb:.1f} | {m * 1e6 / lb:,.0f} | {m * 1e6 / lb / CORES:,.0f} | "
                          f"{lt:.1f} | {n_entities / lt:,.0f} | {n_entities / lt / CORES:,.0f} | 1.00x, 1.00x |")
                continue
            b, t = by[m]
            ratio = f"{lb / b:.2f}x, {lt / t:.2f}x{mark}" if lb is not None else "n/a"
            print(f"| {m}M | {name} | {b:.1f} | {m * 1e6 / b:,.0f} | {m * 1e6 / b / CORES:,.0f} | {t:.1f} | "
                  f"{n_entities / t:,.0f} | {n_entities / t / CORES:,.0f} | {ratio} |")
    for name in ("spark local[2]", "cluster 2x1"):
        print(f"crossover build, {name}: "
              f"{crossover(sizes, {m: v[0] for m, v in local.items()}, {m: v[0] for m, v in results[name].items()}, 'bars')}")
        print(f"crossover training set, {name}: "
              f"{crossover(sizes, {m: v[1] for m, v in local.items()}, {m: v[1] for m, v in results[name].items()}, 'bars')}")


if __name__ == "__main__":
    main()
