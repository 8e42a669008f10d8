"""Saving a training set reproducibly: Parquet plus a manifest (sidecar JSON and Parquet metadata).

The manifest records what produced the set (feature service or refs, catalog hash, view ttls,
warm-up tolerance, labels, timeframe, library versions) and what it holds (data range, row and null
counts, and a content hash). The content hash is a SHA-256 over the column names, dtypes, null
masks and values in row order, independent of Parquet encoding and of when it was written: the
same inputs give the same hash, and :func:`load_training_set` verifies it on read.

Where it fits (the local profile, whose Feast offline store reads Parquet files), the set is also
registered as a Feast ``SavedDataset`` so Feast tooling lists it; on the postgres profile Feast's
saved datasets must be Postgres tables, which mt5lab does not create, so the manifest is the record.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from mt5lab.catalog import (
    CALENDAR_CLOSURES,
    CATALOG_VERSION,
    FEATURE_SERVICE,
    LONGEST_NORMAL_CLOSURE,
    MAX_WARMUP,
    WARMUP_TOLERANCE,
    catalog_hash,
    check_timeframe,
    ttl,
)
from mt5lab.errors import TrainingSetError
from mt5lab.training.labels import LABEL_END, parse_labels
from mt5lab.training.refs import resolve

FORMAT = "mt5lab.training_set/1"
META_KEY = b"mt5lab.manifest"


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _text(v) -> str | None:
    return v.decode(errors="replace") if isinstance(v, bytes) else (None if v is None else str(v))


def versions() -> dict[str, str | None]:
    import talib

    return {"mt5lab": _version("mt5lab"), "feast": _version("feast"), "ta-lib": _version("ta-lib"),
            "ta-lib-c": _text(getattr(talib, "__ta_version__", None)), "polars": pl.__version__,
            "pandas": _version("pandas"), "pyarrow": pa.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def _polars(df) -> pl.DataFrame:
    return df if isinstance(df, pl.DataFrame) else pl.from_pandas(df.reset_index(drop=True))


def content_hash(df) -> str:
    """SHA-256 of the frame's content: names, dtypes, null masks and values, in row order."""
    frame = _polars(df)
    h = hashlib.sha256()
    h.update(f"{frame.height}\n".encode())
    for name, s in frame.to_dict().items():
        if isinstance(s.dtype, pl.Datetime):  # the instant, not the unit it happens to be held in
            s = s.dt.convert_time_zone("UTC").dt.cast_time_unit("us") if s.dtype.time_zone else \
                s.dt.cast_time_unit("us")
        h.update(f"{name}\x1f{s.dtype}\n".encode())
        nulls = s.is_null()
        if s.dtype.is_float():  # NaN and null are both "missing" (pandas writes NaN, polars null)
            nulls = nulls | s.is_nan().fill_null(False)
        h.update(np.packbits(nulls.to_numpy()).tobytes())
        if s.dtype in (pl.String, pl.Categorical) or isinstance(s.dtype, pl.Enum):
            h.update("\x1e".join(s.cast(pl.String).fill_null("").to_list()).encode())
        elif s.dtype.is_float():
            h.update(np.ascontiguousarray(s.fill_null(0.0).fill_nan(0.0).to_numpy()).tobytes())
        else:
            h.update(np.ascontiguousarray(s.to_physical().fill_null(0).to_numpy()).tobytes())
    return "sha256:" + h.hexdigest()


def build_manifest(df, *, features=FEATURE_SERVICE, timeframe: str = "D1", labels=(),
                   full_feature_names: bool = False, profile: str | None = None) -> dict:
    tf = check_timeframe(timeframe)
    sel = resolve(features)
    labs = parse_labels(labels)
    frame = _polars(df)
    names = sel.output_names(full_feature_names)
    missing = [c for c in ["symbol", "event_timestamp", *names] if c not in frame.columns]
    if missing:
        raise TrainingSetError(f"save_training_set: the frame lacks {', '.join(missing)}")
    ts = frame["event_timestamp"]
    feats = frame.select(names)
    all_null = feats.select(pl.all_horizontal(pl.all().is_null())).to_series() if names else None
    return {
        "format": FORMAT,
        "feature_service": sel.service,
        "features": sel.refs,
        "full_feature_names": bool(full_feature_names),
        "timeframe": tf,
        "profile": profile,
        "catalog_version": CATALOG_VERSION,
        "catalog_hash": catalog_hash(),
        "view_ttls_seconds": {v: ttl(tf).total_seconds() for v in sel.views},
        "ttl_rule": f"longest normal closure of any calendar ({LONGEST_NORMAL_CLOSURE}) + one {tf} bar",
        "calendar_closures_seconds": {c: d.total_seconds() for c, d in CALENDAR_CLOSURES.items()},
        "warmup_tolerance": WARMUP_TOLERANCE,
        "max_warmup_bars": MAX_WARMUP,
        "point_in_time_rule": "t - ttl <= event_timestamp (bar close) <= t; Feast 0.67 semantics",
        "labels": [lab.name for lab in labs],
        "label_end_column": LABEL_END if labs else None,
        "data_range": {"event_timestamp_min": _iso(ts.min()), "event_timestamp_max": _iso(ts.max()),
                       "symbols": frame["symbol"].n_unique()},
        "rows": {"total": frame.height,
                 "all_features_null": int(all_null.sum()) if all_null is not None else 0,
                 "null_counts": {c: int(feats[c].null_count()) for c in names}
                 | {lab.name: int(frame[lab.name].null_count()) for lab in labs if lab.name in frame.columns}},
        "columns": [{"name": c, "dtype": str(t)} for c, t in frame.schema.items()],
        "versions": versions(),
    }


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def manifest_path(path: str | Path) -> Path:
    p = Path(path)
    return p.with_name(p.name.removesuffix(".parquet") + ".manifest.json")


def save_training_set(df, path: str | Path, *, features=None, timeframe: str | None = None, labels=None,
                      full_feature_names: bool | None = None, profile=None,
                      saved_dataset: str | None = None) -> dict:
    """Write ``df`` to ``path`` (Parquet, manifest in its metadata) and ``<name>.manifest.json``.

    Request parameters default to those :func:`mt5lab.training.assemble.training_set` recorded on a pandas
    result. ``saved_dataset``: also register a Feast SavedDataset of that name (local profile).
    Returns the manifest. Both files are replaced atomically.
    """
    rec = getattr(df, "attrs", {}).get("mt5lab", {}) if not isinstance(df, pl.DataFrame) else {}
    from mt5lab.config import profile_name

    prof_name = profile_name(getattr(profile, "name", profile))
    man = build_manifest(df, features=features if features is not None else rec.get("features", FEATURE_SERVICE),
                         timeframe=timeframe or rec.get("timeframe", "D1"),
                         labels=labels if labels is not None else rec.get("labels", ()),
                         full_feature_names=full_feature_names if full_feature_names is not None
                         else rec.get("full_feature_names", False), profile=prof_name)
    path = Path(path)
    table = df.to_arrow() if isinstance(df, pl.DataFrame) else pa.Table.from_pandas(df, preserve_index=False)
    man["content_hash"] = content_hash(pl.from_arrow(table))  # of exactly what is written
    if saved_dataset:
        man["saved_dataset"] = register_saved_dataset(saved_dataset, path, man, profile)
    body = json.dumps(man, indent=1, sort_keys=True)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: body.encode()})
    _atomic(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
    _atomic(manifest_path(path), lambda tmp: Path(tmp).write_text(body + "\n"))
    return man


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_manifest(path: str | Path) -> dict:
    meta = pq.read_schema(path).metadata or {}
    if META_KEY not in meta:
        raise TrainingSetError(f"{path}: not an mt5lab training set (no manifest in its metadata)")
    return json.loads(meta[META_KEY])


def load_training_set(path: str | Path, to: str = "pandas", verify: bool = True):
    """Read a saved set back (pandas dtypes as saved) and check its content hash."""
    man = read_manifest(path)
    table = pq.read_table(path)
    df = table.to_pandas() if to == "pandas" else pl.from_arrow(table)
    if verify and content_hash(pl.from_arrow(table)) != man["content_hash"]:
        raise TrainingSetError(f"{path}: content hash differs from its manifest (file altered?)")
    return df, man


def register_saved_dataset(name: str, path: Path, manifest: dict, profile=None) -> str | None:
    """Register the Parquet file as a Feast SavedDataset (local profile only; else None)."""
    from mt5lab.config import resolve as resolve_profile
    from mt5lab.feast_repo.store import feature_store

    prof = resolve_profile(profile)
    if prof.name != "local":
        return None
    from feast.infra.offline_stores.file_source import SavedDatasetFileStorage
    from feast.saved_dataset import SavedDataset

    fs = feature_store(prof, manifest["timeframe"])
    ds = SavedDataset(name=name, features=manifest["features"], join_keys=["symbol"],
                      storage=SavedDatasetFileStorage(path=str(Path(path).resolve())),
                      full_feature_names=manifest["full_feature_names"],
                      feature_service_name=manifest["feature_service"],
                      tags={"catalog_hash": manifest["catalog_hash"], "content_hash": manifest["content_hash"],
                            "created_at": datetime.now(UTC).isoformat(timespec="seconds")})
    rng = manifest["data_range"]
    if rng["event_timestamp_min"]:  # Feast reads the file back over this range
        ds.min_event_timestamp = datetime.fromisoformat(rng["event_timestamp_min"])
        ds.max_event_timestamp = datetime.fromisoformat(rng["event_timestamp_max"])
    fs.registry.apply_saved_dataset(ds, fs.project, commit=True)
    return name
