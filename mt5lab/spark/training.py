"""Training sets on Spark: Feast's ``get_historical_features`` on its ``SparkOfflineStore``.

The join is Feast's own Spark SQL (``MULTIPLE_FEATURE_VIEW_POINT_IN_TIME_JOIN``): each entity row
gets, per view, the feature row of its symbol with the latest ``event_timestamp`` (the bar close)
such that ``t - ttl <= event_timestamp <= t``, ties to the larger ``created_timestamp``, else nulls.
That is the rule of :mod:`mt5lab.training.pit`; unlike Feast's file store, the Spark store keeps every
entity row and every duplicate, so the answer equals mt5lab's local engine row for row
(``tests/test_spark.py``).

The entity set never has to pass through the driver: give a Spark DataFrame or a table name / SQL
query (``"db.decisions"`` or ``"SELECT symbol, event_timestamp FROM ..."``). A pandas or polars frame
is checked like :func:`mt5lab.training.assemble.training_set` does, then shipped from the driver.
"""

from __future__ import annotations

import time

import polars as pl

from mt5lab.catalog import FEATURE_SERVICE, check_timeframe
from mt5lab.config import data_dir
from mt5lab.errors import ConfigError, TrainingSetError
from mt5lab.spark.dataset import SparkDatasetStore
from mt5lab.spark.feast_config import quiet_spark_warnings, spark_feature_store
from mt5lab.spark.labels import with_labels
from mt5lab.spark.session import spark_session
from mt5lab.training.assemble import normalize_entities
from mt5lab.training.labels import LABEL_END, parse_labels
from mt5lab.training.refs import resolve

ROW = "__mt5lab_row"
OUTPUTS = ("pandas", "polars", "spark")


def _is_spark(frame) -> bool:
    try:
        from pyspark.sql import DataFrame
    except ImportError:
        return False
    return isinstance(frame, DataFrame)


def _spark_entities(spark, entities, source: str):
    """A Spark DataFrame / table name / SQL entity set, checked (columns, types, nulls)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, TimestampType

    if isinstance(entities, str):
        text = entities.strip()
        try:
            sdf = spark.sql(text) if " " in text else spark.table(text)
        except Exception as exc:
            raise TrainingSetError(f"{source}: cannot read {text!r}: {str(exc).strip().splitlines()[0]}") from None
    else:
        sdf = entities
    types = dict((f.name, f.dataType) for f in sdf.schema.fields)
    missing = [c for c in ("symbol", "event_timestamp") if c not in types]
    if missing:
        raise TrainingSetError(f"{source}: missing column(s) {', '.join(missing)} (need symbol and event_timestamp)")
    if not isinstance(types["symbol"], StringType):
        raise TrainingSetError(f"{source}: column 'symbol' must hold strings, not {types['symbol'].simpleString()}")
    if not isinstance(types["event_timestamp"], TimestampType):
        raise TrainingSetError(f"{source}: column 'event_timestamp' must be a TIMESTAMP (UTC instants), "
                               f"not {types['event_timestamp'].simpleString()}")
    nulls = sdf.select(*(F.sum(F.col(c).isNull().cast("long")).alias(c) for c in ("symbol", "event_timestamp"))).first()
    for c in ("symbol", "event_timestamp"):
        if nulls[c]:
            raise TrainingSetError(f"{source}: {c} is null in {nulls[c]} row(s)")
    if time.localtime().tm_gmtoff != 0:
        raise ConfigError("a Spark entity set needs the driver on UTC (run with TZ=UTC): Feast 0.67 reads "
                          "its time range back as driver-local time")
    return sdf


def _driver_entities(entities, source: str):
    """A pandas/polars entity set as pandas with a row number (for the input order)."""
    _, frame = normalize_entities(entities, source)
    pdf = frame.copy() if not isinstance(frame, pl.DataFrame) else frame.to_pandas()
    ts = pdf["event_timestamp"]
    sub_us = (ts.dt.nanosecond != 0).to_numpy()
    if sub_us.any():
        row = int(sub_us.argmax()) + 1
        raise TrainingSetError(f"{source}: row {row}: event_timestamp {ts.iloc[row - 1]} has nanoseconds; "
                               f"Spark holds microseconds")
    pdf[ROW] = range(len(pdf))
    return pdf


def _bars(spark, store, timeframe: str):
    """The store's bars of ``timeframe`` on Spark; TrainingSetError when there are none."""
    from pyspark.sql import functions as F

    path = store.bars_path(timeframe)
    if not path.exists():
        raise TrainingSetError(f"labels need bars: {path} does not exist")
    bars = spark.read.parquet(str(path))
    return bars.filter(F.col("timeframe") == timeframe) if "timeframe" in bars.columns else bars


def training_set(entities, features: str | list[str] = FEATURE_SERVICE, *, timeframe: str = "D1",
                 labels=(), full_feature_names: bool = False, to: str = "pandas", profile=None, store=None,
                 spark=None):
    """A point-in-time training set computed by Feast's ``SparkOfflineStore``.

    Args:
        entities: pandas or polars frame (``symbol``, tz-aware ``event_timestamp``), a Spark
            DataFrame (``symbol`` STRING, ``event_timestamp`` TIMESTAMP), or a table name / SQL query.
            Other columns are passed through.
        features: ``"mt5_v1"`` or ``"view:feature"`` refs.
        timeframe: whose features are joined.
        labels: e.g. ``["fwd_return_5"]``: appended after the features with ``label_end_timestamp``,
            computed from the store's bars by the local engine's rule (:mod:`mt5lab.spark.labels`).
        full_feature_names: ``view__feature`` column names.
        to: ``"pandas"``, ``"polars"`` (collected to the driver, in input order for pandas/polars
            input) or ``"spark"`` (a Spark DataFrame that stays on the cluster, in no particular
            order; write it with ``.write.parquet(...)``).
        profile: the profile whose online store and project name are used (default ``MT5LAB_PROFILE``).
        store: a :class:`~mt5lab.spark.dataset.SparkDatasetStore` (default: the data dir's).
        spark: a SparkSession (default: :func:`mt5lab.spark.session.spark_session`).

    Returns:
        pandas: entity columns (``event_timestamp`` ``datetime64[ns, UTC]``), then the features in
        Feast's order and dtypes (an Int64 feature with a null is float64/NaN). polars: catalog
        dtypes with nulls. Spark: Feast's DataFrame (timestamps are UTC instants).

    Raises:
        TrainingSetError: a bad entity set or label (one line naming the rule). ConfigError: pyspark/Java
        missing, or a Spark entity set on a driver not running on UTC.
    """
    if to not in OUTPUTS:
        raise TrainingSetError(f"to={to!r}: expected one of {', '.join(OUTPUTS)}")
    tf = check_timeframe(timeframe)
    sel = resolve(features)
    labs = parse_labels(labels)
    spark = spark or spark_session()
    store = store or SparkDatasetStore(data_dir())
    fs = spark_feature_store(store, tf, profile)
    driver = not (_is_spark(entities) or isinstance(entities, str))
    if driver:
        edf = _driver_entities(entities, "entities")
    else:
        edf = _spark_entities(spark, entities, "entities")
        if to != "spark":
            from pyspark.sql import functions as F

            edf = edf.withColumn(ROW, F.monotonically_increasing_id())
    outputs = sel.output_names(full_feature_names) + [lab.name for lab in labs] + ([LABEL_END] if labs else [])
    clash = [c for c in outputs if c in edf.columns]
    if clash:
        raise TrainingSetError(f"entities: column(s) {', '.join(clash)} clash with requested feature or label names")
    with quiet_spark_warnings():  # the registry's SparkSource warns on every read
        feats = fs.get_feature_service(sel.service) if sel.service else sel.refs
        job = fs.get_historical_features(entity_df=edf, features=feats, full_feature_names=full_feature_names)
        sdf = job.to_spark_df()
    if labs:
        sdf = with_labels(sdf, _bars(spark, store, tf), tf, [lab.name for lab in labs])
    if to == "spark":
        return sdf.drop(ROW) if ROW in sdf.columns else sdf
    table = sdf.toArrow()
    frame = pl.from_arrow(table).sort(ROW).drop(ROW)
    frame = frame.with_columns(  # session time zone UTC: naive values are UTC wall times
        (pl.col(c).dt.replace_time_zone("UTC") if dt.time_zone is None else pl.col(c).dt.convert_time_zone("UTC"))
        for c, dt in frame.schema.items() if isinstance(dt, pl.Datetime))
    if to == "polars":
        return frame
    pdf = frame.with_columns(pl.col(c).dt.cast_time_unit("ns")
                             for c, dt in frame.schema.items() if isinstance(dt, pl.Datetime)).to_pandas()
    return pdf
