"""``mt5lab materialize`` on Spark: Feast's own materialization with the ``spark.engine`` batch engine.

Per view, Feast reads the SparkSource (the committed dataset) for ``start <= event_timestamp <=
end``, keeps each symbol's latest row (a window over ``event_timestamp``, ``created_timestamp``) and
writes it from the executors into the online store (``mapInArrow`` -> ``online_write_batch``). The
window defaults to the dataset's whole range, so the online store ends up holding each symbol's
newest offline row: what :func:`mt5lab.online.materialize.materialize` writes (``tests/test_spark.py``
reads both back through Feast and compares).

The online store must be reachable from every executor: Redis (the team profile's
``MT5LAB_REDIS_*``). The local profile's SQLite file lives on the driver's disk, so it is refused.
Feast's Redis writer skips a row whose timestamp is not newer than the stored one: a corrected bar
under the same timestamp needs ``mt5lab materialize --full`` on the local engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mt5lab.catalog import check_timeframe
from mt5lab.config import resolve
from mt5lab.errors import ConfigError, StoreError
from mt5lab.spark import dataset
from mt5lab.spark.feast_config import quiet_spark_warnings, spark_feature_store
from mt5lab.spark.session import spark_session


@dataclass(frozen=True)
class SparkMaterializeResult:
    timeframe: str
    start: datetime | None
    end: datetime | None


def spark_materialize(store, profile=None, timeframe: str = "D1", *, start: datetime | None = None,
                      end: datetime | None = None, online_store: dict | None = None,
                      spark=None) -> SparkMaterializeResult:
    """Materialize ``timeframe``'s views from ``store``'s Spark dataset into the online store.

    Args:
        store: a :class:`~mt5lab.spark.dataset.SparkDatasetStore`.
        profile: whose online store (must be Redis) and Feast project; default ``MT5LAB_PROFILE``.
        start, end: tz-aware window of ``event_timestamp`` (default: the dataset's first and last).
        online_store: a Feast ``online_store`` mapping instead of the profile's (tests).
        spark: a SparkSession (default: :func:`mt5lab.spark.session.spark_session`).

    Raises:
        ConfigError: the online store is not Redis. StoreError: no committed dataset, or the Spark
        job failed (one line).
    """
    from pyspark.sql import functions as F

    tf = check_timeframe(timeframe)
    prof = resolve(profile)
    online = dict(online_store or prof.raw["online_store"])
    if online.get("type") != "redis":
        raise ConfigError(f"the spark engine materializes into Redis (reachable from every executor), not "
                          f"{online.get('type')!r}: use the postgres profile (MT5LAB_REDIS_*)")
    cur = dataset.current(store.root, tf)
    if cur is None:
        raise StoreError(f"no {tf} features built on Spark yet: run `mt5lab build --engine spark --timeframe {tf}`")
    spark = spark or spark_session()
    if start is None or end is None:
        # collect() gives naive driver-local datetimes, so read the range back as epoch microseconds
        lo, hi = spark.read.parquet(str(cur)).agg(F.unix_micros(F.min("event_timestamp")),
                                                  F.unix_micros(F.max("event_timestamp"))).first()
        if lo is None:
            return SparkMaterializeResult(tf, None, None)
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        start = start or epoch + timedelta(microseconds=lo)
        end = end or epoch + timedelta(microseconds=hi)
    for name, t in (("start", start), ("end", end)):
        if t.tzinfo is None:
            raise ConfigError(f"{name} {t} is timezone-naive; give a UTC time")
    fs = spark_feature_store(store, tf, prof, online)
    try:
        with quiet_spark_warnings():
            fs.materialize(start_date=start, end_date=end)
    except Exception as exc:
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        raise StoreError(f"spark materialize of {tf} failed: {first}") from None
    return SparkMaterializeResult(tf, start, end)
