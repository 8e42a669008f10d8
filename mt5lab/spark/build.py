"""``mt5lab build`` on Spark: the 42 features of every symbol, computed where the bars are.

Bars are read as Parquet (the local store's ``bars.parquet`` of the timeframe, or any Parquet
path/glob of canonical bars), grouped by symbol (one shuffle), and each symbol's bars, in time order,
go through the very same :func:`mt5lab.features.compute.compute_features` as the local engine
(:func:`mt5lab.features.build.feature_rows`, TA-Lib inside ``applyInArrow``: Arrow in, Arrow out, no
pandas round trip). The result is written as a new version of the dataset
(:mod:`mt5lab.spark.dataset`) and committed only once Spark's job has succeeded; a failed job (a lost
worker past ``spark.task.maxFailures``, a bad bar file) deletes its version and raises one line.

Memory: one symbol's history per task (an M1 year is ~370k bars x 46 columns, ~140 MB in Arrow),
so the executor memory must hold the longest symbol's history; partitions hold whole symbols.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl

from mt5lab.catalog import FEATURES, check_timeframe
from mt5lab.errors import StoreError
from mt5lab.spark import dataset
from mt5lab.spark.session import spark_session
from mt5lab.storage.base import WriteResult, feature_schema, now_utc


def spark_ddl() -> str:
    """The Spark schema of a feature row (the local store's columns and types), as DDL."""
    cols = ["symbol STRING", "time TIMESTAMP", "event_timestamp TIMESTAMP", "created_timestamp TIMESTAMP"]
    cols += [f"{f.name} {'DOUBLE' if f.dtype == 'Float64' else 'BIGINT'}" for f in FEATURES]
    return ", ".join(cols)


def arrow_schema():
    """The Arrow schema Spark expects back from a group (string, not large_string; µs UTC)."""
    import pyarrow as pa

    types = {pl.String(): pa.string(), pl.Float64(): pa.float64(), pl.Int64(): pa.int64()}
    return pa.schema([(name, pa.timestamp("us", tz="UTC") if isinstance(dt, pl.Datetime) else types[dt])
                      for name, dt in feature_schema().items()])


def group_features(timeframe: str, created: datetime):
    """The function each symbol's group runs: Arrow bars -> Arrow feature rows (``feature_rows``)."""
    tf = check_timeframe(timeframe)

    def run(table):
        from mt5lab.features.build import feature_rows

        bars = pl.from_arrow(table).with_columns(pl.col("time").dt.convert_time_zone("UTC")
                                                 .dt.cast_time_unit("us")).sort("time")
        out = feature_rows(bars, tf, created).select(list(feature_schema()))
        return out.to_arrow().cast(arrow_schema())

    return run


def _first_line(exc: BaseException) -> str:
    java = getattr(exc, "java_exception", None)
    text = str(java.toString()) if java is not None else str(exc)
    for line in text.strip().splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


def spark_build(store, timeframes: list[str] | None = None, symbols: list[str] | None = None, *,
                bars_path: str | None = None, spark=None) -> dict[str, WriteResult]:
    """Full rebuild of the features of ``timeframes`` on Spark into ``store``'s Spark dataset.

    Args:
        store: a :class:`mt5lab.spark.dataset.SparkDatasetStore` (bars and the dataset's root).
        timeframes: default: every timeframe that holds bars.
        symbols: rebuild only these; the other symbols' rows are carried over from the committed
            version into the new one.
        bars_path: read bars from this Parquet path or glob (canonical bar columns, µs UTC times)
            instead of the store's bars file (one timeframe at a time).
        spark: a SparkSession (default: :func:`mt5lab.spark.session.spark_session`).

    Returns:
        ``{timeframe: WriteResult(inserted=rows written, 0, 0)}``: every version is written whole.

    Raises:
        StoreError: the Spark job failed (one line; the committed version is unchanged and the new
        one removed).
    """
    spark = spark or spark_session()
    out: dict[str, WriteResult] = {}
    tfs = [check_timeframe(t) for t in timeframes] if timeframes else store.timeframes()
    if bars_path and len(tfs) != 1:
        raise StoreError("bars_path holds one timeframe: give exactly one --timeframe")
    with store.lock():
        for tf in tfs:
            src = bars_path or str(store.bars_path(tf))
            if not bars_path and not Path(src).exists():
                continue
            out[tf] = WriteResult(_build_one(spark, store, tf, src, symbols), 0, 0)
    return out


def _build_one(spark, store, tf: str, src: str, symbols: list[str] | None) -> int:
    from pyspark.sql import functions as F

    version = dataset.new_version(store.root, tf)
    try:
        bars = spark.read.parquet(src)
        if "timeframe" in bars.columns:
            bars = bars.filter(F.col("timeframe") == tf)
        if symbols:
            bars = bars.filter(F.col("symbol").isin(list(symbols)))
        feats = bars.groupBy("symbol").applyInArrow(group_features(tf, now_utc()), spark_ddl())
        cur = dataset.current(store.root, tf)
        if symbols and cur is not None:  # carry the other symbols' committed rows over
            kept = spark.read.parquet(str(cur)).filter(~F.col("symbol").isin(list(symbols)))
            feats = feats.unionByName(kept.select(*feats.columns))
        feats.sortWithinPartitions("symbol", "time").write.mode("errorifexists").parquet(str(version))
        dataset.commit(store.root, tf, version)
    except BaseException as exc:
        dataset.discard(version)
        if isinstance(exc, StoreError | KeyboardInterrupt):
            raise
        raise StoreError(f"spark build of {tf} failed, nothing committed: {_first_line(exc)}") from None
    lf = dataset.scan(store.root, tf)
    return lf.select(pl.len()).collect().item() if lf is not None else 0
