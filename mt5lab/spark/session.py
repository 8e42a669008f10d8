"""The engine switch and the one SparkSession the Spark engine runs on.

The switch: ``MT5LAB_ENGINE=local|spark`` (default ``local``), or ``--engine`` on ``mt5lab build``,
``training-set`` and ``materialize``. Under ``spark`` those verbs run on the cluster that
``MT5LAB_SPARK_MASTER`` names (Spark's own ``spark.master`` syntax):

* ``local[N]`` (default ``local[2]``): N threads in this process, no cluster;
* ``spark://host:7077``: a standalone cluster (``spark://h1:7077,h2:7077`` with ZooKeeper HA);
* ``yarn``: Hadoop YARN (``HADOOP_CONF_DIR`` names the cluster);
* ``k8s://https://host:443``: Kubernetes (needs ``spark.kubernetes.container.image``).

Further settings: ``MT5LAB_SPARK_CONF`` holds ``key=value`` pairs separated by ``;``
(``spark.executor.memory=4g;spark.executor.cores=4``). Every key must start with ``spark.``.

Settings mt5lab always makes (traps of Feast 0.67 and Spark, each a wrong answer if missed):
``spark.sql.session.timeZone=UTC`` (Feast's point-in-time SQL compares times with strings and
Spark renders times in the session zone), ``spark.sql.parquet.outputTimestampType=TIMESTAMP_MICROS``
(Spark's default INT96 is not what the local engine reads; Spark cannot read nanosecond Parquet),
Arrow transfer on, and the executors' Python = this interpreter (``PYSPARK_PYTHON``), so on one
machine executors import the same mt5lab and TA-Lib. On a real cluster every executor needs
mt5lab installed in the Python that ``spark.pyspark.python`` names (or a packed venv in
``spark.archives``).
"""

from __future__ import annotations

import os
import sys

from mt5lab.errors import ConfigError

ENGINES = ("local", "spark")
DEFAULT_MASTER = "local[2]"


def engine_name(engine: str | None = None) -> str:
    """``engine`` or ``MT5LAB_ENGINE`` (default ``local``), checked. ConfigError for anything else."""
    name = (engine or os.environ.get("MT5LAB_ENGINE") or "local").strip().lower()
    if name not in ENGINES:
        raise ConfigError(f"unknown engine {name!r}; expected one of: {', '.join(ENGINES)} (MT5LAB_ENGINE)")
    return name


def master(value: str | None = None) -> str:
    """``value`` or ``MT5LAB_SPARK_MASTER`` (default ``local[2]``)."""
    m = (value or os.environ.get("MT5LAB_SPARK_MASTER") or DEFAULT_MASTER).strip()
    if not m.startswith(("local", "spark://", "yarn", "k8s://")):
        raise ConfigError(f"MT5LAB_SPARK_MASTER={m!r}: expected local[N], spark://host:7077, yarn or k8s://...")
    return m


def parse_conf(text: str | None) -> dict[str, str]:
    """``MT5LAB_SPARK_CONF`` (``k=v;k=v``) as a dict; ConfigError naming the bad pair."""
    out: dict[str, str] = {}
    for i, pair in enumerate(p.strip() for p in (text or "").split(";")):
        if not pair:
            continue
        key, sep, value = pair.partition("=")
        if not sep or not key.strip().startswith("spark."):
            raise ConfigError(f"MT5LAB_SPARK_CONF: pair {i + 1} ({key.strip()!r}): expected spark.key=value")
        out[key.strip()] = value.strip()
    return out


def spark_conf(master_url: str | None = None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The flat ``spark.*`` settings of the engine's session (also Feast's ``spark_conf`` and
    ``batch_engine`` keys: Feast 0.67 ignores a nested ``spark_conf`` under ``batch_engine``)."""
    m = master(master_url)
    conf = {
        "spark.master": m,
        "spark.app.name": "mt5lab",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.parser.quotedRegexColumnNames": "true",
        "spark.pyspark.python": sys.executable,
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.shuffle.partitions": "8",
        "spark.sql.adaptive.enabled": "true",
    }
    if m.startswith("local") or m.startswith("spark://127.") or m.startswith("spark://localhost"):
        conf |= {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"}
    conf |= parse_conf(os.environ.get("MT5LAB_SPARK_CONF"))
    conf |= extra or {}
    return conf


def spark_session(master_url: str | None = None, extra: dict[str, str] | None = None):
    """The active SparkSession, else a new one from :func:`spark_conf`.

    One session per process (Spark's rule): Feast's Spark offline store and compute engine take the
    active session, so the one made here, with the settings above, is the one they use. The time
    zone is set again on an existing session. Raises ConfigError when pyspark or Java is missing.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError("the spark engine needs pyspark: pip install 'mt5lab[spark]' (and Java 17)") from None
    active = SparkSession.getActiveSession()
    if active is not None:
        active.conf.set("spark.sql.session.timeZone", "UTC")
        return active
    conf = spark_conf(master_url, extra)
    os.environ.setdefault("PYSPARK_PYTHON", conf["spark.pyspark.python"])
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    if conf.get("spark.driver.host") == "127.0.0.1":
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = SparkSession.builder
    for k, v in conf.items():
        builder = builder.config(k, v)
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # py4j: "Java gateway process exited" when there is no java
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot start Spark (master {conf['spark.master']}): {first} "
                          f"(is Java 17 installed? apt-get install openjdk-17-jre-headless)") from None
    session.sparkContext.setLogLevel("ERROR")
    return session


def stop_session() -> None:
    """Stop the active session (a new :func:`spark_session` then starts afresh, e.g. on another master)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        return
    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()
