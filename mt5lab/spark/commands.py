"""What ``mt5lab build|materialize|training-set --engine spark`` run (the CLI's one-line hooks).

Each takes the verb's options, runs the Spark engine on the data dir's dataset
(:class:`mt5lab.spark.dataset.SparkDatasetStore`) and reports through ``echo``, one line per
timeframe or output. Errors are mt5lab errors (one line, the verb's exit code).
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from mt5lab.config import data_dir
from mt5lab.errors import StoreError, TrainingSetError
from mt5lab.spark import dataset
from mt5lab.spark.dataset import SparkDatasetStore


def build(timeframes: list[str] | None, symbols: list[str] | None, echo) -> None:
    from mt5lab.spark.build import spark_build

    store = SparkDatasetStore(data_dir())
    for tf, r in spark_build(store, timeframes, symbols).items():
        echo(f"{tf}: {r.inserted} feature rows built on Spark ({dataset.current(store.root, tf).name})")


def materialize(timeframes: list[str] | None, profile, echo) -> None:
    from mt5lab.spark.materialize import spark_materialize

    store = SparkDatasetStore(data_dir())
    for tf in timeframes or store.timeframes():
        r = spark_materialize(store, profile, tf)
        echo(f"{tf}: materialized on Spark, bar closes {r.start} .. {r.end}")


def write_parquet(sdf, out: str | Path) -> Path:
    """Write a Spark DataFrame as a Parquet directory at ``out``: into a hidden sibling first, then
    renamed into place (a previous output is replaced only once the new one is complete)."""
    out = Path(out)
    tmp = out.parent / f".{out.name}.tmp-{secrets.token_hex(4)}"
    try:
        sdf.write.mode("errorifexists").parquet(str(tmp))
        if out.exists():
            old = out.parent / f".{out.name}.old-{secrets.token_hex(4)}"
            os.rename(out, old)
            os.rename(tmp, out)
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)
        else:
            os.rename(tmp, out)
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        raise StoreError(f"cannot write {out}: {first}") from None
    return out


def training_set(entities: str | None, timeframe: str, features, full_feature_names: bool, out: str,
                 profile, echo, labels=()) -> dict:
    """``--entities`` (a Parquet path Spark reads, or a table name) -> Parquet directory ``out`` plus
    ``<out>.manifest.json`` (:mod:`mt5lab.spark.manifest`); ``labels`` as the local verb's ``--label``.
    Echoes the local verb's line (rows, features, labels, rows without features, content hash) and
    returns the manifest."""
    from mt5lab.spark.manifest import spark_manifest, write_manifest
    from mt5lab.spark.session import spark_session
    from mt5lab.spark.training import training_set as run

    if not entities:
        raise TrainingSetError("--engine spark needs --entities: a Parquet path or a Spark table name")
    spark = spark_session()
    source = spark.read.parquet(entities) if Path(entities).exists() or "/" in entities else entities
    feats = list(features) if len(features) > 1 or (features and ":" in features[0]) else \
        (features[0] if features else "mt5_v1")
    sdf = run(source, feats, timeframe=timeframe, labels=list(labels), full_feature_names=full_feature_names,
              to="spark", profile=profile, spark=spark)
    path = write_parquet(sdf, out)
    man = spark_manifest(spark, path, features=feats, timeframe=timeframe, labels=list(labels),
                         full_feature_names=full_feature_names, profile=profile)
    write_manifest(man, path)
    echo(f"{path}: {man['rows']['total']} rows, {len(man['features'])} features, {len(man['labels'])} labels, "
         f"{man['rows']['all_features_null']} rows without features; {man['content_hash']} (written by Spark)")
    return man
