"""The manifest of a training set Spark wrote: the local engine's manifest, counted on the cluster.

``mt5lab training-set`` writes ``<out>.manifest.json`` next to its output on both engines
(:func:`mt5lab.training.manifest.manifest_path`: ``train.parquet`` -> ``train.manifest.json``, a
Spark directory ``train`` -> ``train.manifest.json``). The request part (feature service and refs,
catalog hash, view ttls, warm-up tolerance, labels, timeframe, versions) and ``columns`` (the dtypes
polars reads from the written files) come from :func:`mt5lab.training.manifest.build_manifest`
itself; the content part (row and null counts, data range, symbols) is counted by one Spark
aggregation over the written files, so no row passes through the driver.

Differences, both on purpose: ``content_hash`` is ``xxhash64-sum:<rows>:<hex>``, the sum of Spark's
``xxhash64`` of every row (order-independent: a Spark output has no row order; the local engine's
``sha256:`` hashes rows in order); the manifest is not copied into each part file's metadata.
``engine`` is ``"spark"``.
"""

from __future__ import annotations

import json
import os
import secrets
from datetime import UTC, datetime, timedelta
from functools import reduce
from pathlib import Path

import polars as pl

from mt5lab.config import profile_name
from mt5lab.errors import StoreError
from mt5lab.training.labels import parse_labels
from mt5lab.training.manifest import build_manifest, manifest_path
from mt5lab.training.refs import resolve

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _iso(us: int | None) -> str | None:
    return (EPOCH + timedelta(microseconds=int(us))).isoformat() if us is not None else None


def spark_manifest(spark, out: str | Path, *, features, timeframe: str, labels=(),
                   full_feature_names: bool = False, profile=None) -> dict:
    """The manifest of the Parquet directory ``out`` (a training set with ``symbol``,
    ``event_timestamp`` (UTC), the requested features, then any labels). Raises TrainingSetError
    when the files lack a requested column (as :func:`build_manifest` does)."""
    from pyspark.sql import functions as F

    files = str(Path(out) / "*.parquet")
    empty = pl.scan_parquet(files).head(0).collect()  # the schema a polars reader sees
    man = build_manifest(empty, features=features, timeframe=timeframe, labels=labels,
                         full_feature_names=full_feature_names, profile=profile_name(getattr(profile, "name", profile)))
    names = resolve(features).output_names(full_feature_names)
    labs = [lab.name for lab in parse_labels(labels)]
    sdf = spark.read.parquet(str(out))

    def nulls(c: str):
        return F.sum(F.col(c).isNull().cast("long"))

    all_null = reduce(lambda a, b: a & b, [F.col(c).isNull() for c in names]) if names else F.lit(False)
    row_hash = F.xxhash64(*(F.col(c) for c in sdf.columns)).cast("decimal(38,0)")
    aggs = [F.count(F.lit(1)).alias("rows"), F.sum(all_null.cast("long")).alias("all_null"),
            F.unix_micros(F.min("event_timestamp")).alias("t_min"),
            F.unix_micros(F.max("event_timestamp")).alias("t_max"),
            F.countDistinct("symbol").alias("symbols"), F.sum(row_hash).alias("hash")]
    aggs += [nulls(c).alias(f"n{i}") for i, c in enumerate([*names, *labs])]
    r = sdf.agg(*aggs).first()
    counts = {c: int(r[f"n{i}"] or 0) for i, c in enumerate([*names, *labs])}
    man.update({
        "engine": "spark",
        "data_range": {"event_timestamp_min": _iso(r["t_min"]), "event_timestamp_max": _iso(r["t_max"]),
                       "symbols": int(r["symbols"])},
        "rows": {"total": int(r["rows"]), "all_features_null": int(r["all_null"] or 0), "null_counts": counts},
        "content_hash": f"xxhash64-sum:{int(r['rows'])}:{int(r['hash'] or 0) % 2**128:032x}",
    })
    return man


def write_manifest(man: dict, out: str | Path) -> Path:
    """Write ``man`` as ``<out>.manifest.json`` (atomically: a hidden sibling, then renamed)."""
    path = manifest_path(out)
    tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
    try:
        tmp.write_text(json.dumps(man, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path
