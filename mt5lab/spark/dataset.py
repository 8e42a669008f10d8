"""The Spark engine's feature dataset: Parquet directories committed atomically, one per timeframe.

Layout under the data dir::

    offline/spark/features/timeframe=<TF>/v-<utc stamp>-<random>/part-*.parquet   one version
    offline/spark/features/timeframe=<TF>/current -> v-...                        the committed one

A writer (Spark's build, or :meth:`SparkDatasetStore.write_features`) fills a new ``v-*`` directory
that no reader knows of, then commits by replacing the ``current`` symlink with one ``os.replace``
(atomic on POSIX). A job that dies half-way leaves ``current`` on the previous version, never on a
half-written one; readers only ever open ``current``. The previous version is kept (a reader may
still be scanning it), older ones and uncommitted leftovers are removed at the next commit.

Files: one row per (symbol, bar), the local store's feature columns (``symbol``, ``time``,
``event_timestamp``, ``created_timestamp`` as Parquet ``TIMESTAMP(MICROS, UTC)``, then the 42
features as float64/int64), each symbol's rows in one file, sorted by time. Symbols are column
values, never directory names. Spark reads it as a SparkSource; polars (the local engine) reads
the same files.

The symlink commit needs a POSIX file system shared by driver and executors (one machine, NFS);
on HDFS or an object store use a table format with atomic commits instead.
"""

from __future__ import annotations

import os
import secrets
import shutil
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from mt5lab.catalog import check_timeframe
from mt5lab.errors import StoreError
from mt5lab.storage.base import WriteResult, feature_schema, merge_upsert
from mt5lab.storage.local import LocalStore, _filter

CURRENT = "current"


def dataset_root(root: Path, timeframe: str) -> Path:
    """``<root>/offline/spark/features/timeframe=<TF>``: the versions and the ``current`` link."""
    return Path(root) / "offline" / "spark" / "features" / f"timeframe={check_timeframe(timeframe)}"


def new_version(root: Path, timeframe: str) -> Path:
    """A fresh, not yet existing version directory (the writer creates it)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    base = dataset_root(root, timeframe)
    base.mkdir(parents=True, exist_ok=True)
    return base / f"v-{stamp}-{secrets.token_hex(4)}"


def current(root: Path, timeframe: str) -> Path | None:
    """The committed version directory of ``timeframe``, or None before the first commit."""
    link = dataset_root(root, timeframe) / CURRENT
    return link.resolve() if link.is_symlink() and link.resolve().is_dir() else None


def commit(root: Path, timeframe: str, version: Path) -> None:
    """Make ``version`` the committed one (atomic symlink swap), then prune older versions.

    Raises StoreError (nothing changed) when ``version`` is not a complete directory of Parquet files.
    """
    version = Path(version)
    if not version.is_dir() or not any(version.glob("*.parquet")):
        raise StoreError(f"cannot commit {version}: no Parquet files (the write did not finish)")
    base = dataset_root(root, timeframe)
    tmp = base / f".{CURRENT}-{secrets.token_hex(4)}"
    previous = current(root, timeframe)
    try:
        os.symlink(version.name, tmp)
        os.replace(tmp, base / CURRENT)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise StoreError(f"cannot commit {version}: {exc.strerror or exc}") from None
    keep = {version.name, previous.name if previous else None, CURRENT}
    for p in base.iterdir():
        if p.name not in keep and (p.name.startswith("v-") or p.name.startswith(f".{CURRENT}-")):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def discard(version: Path) -> None:
    """Remove an uncommitted version directory (a failed write)."""
    shutil.rmtree(version, ignore_errors=True)


def scan(root: Path, timeframe: str) -> pl.LazyFrame | None:
    """A polars scan of the committed version (None before the first commit)."""
    cur = current(root, timeframe)
    if cur is None:
        return None
    return pl.scan_parquet(str(cur / "*.parquet")).select(list(feature_schema()))


class SparkDatasetStore(LocalStore):
    """The local store's bars (one Parquet file per timeframe) with the Spark engine's feature
    dataset (above) as its feature table: the offline store both engines read.

    mt5lab's own point-in-time join (``training_set(..., store=SparkDatasetStore(root))``) and
    materialize read the files Spark wrote; :meth:`write_features` (used by incremental ``update``)
    upserts into a new version and commits it, so carried obv/ad state keeps working.
    """

    profile = "spark"

    def __repr__(self) -> str:
        return f"SparkDatasetStore({str(self.root)!r})"

    def features_dir(self, timeframe: str) -> Path:
        """The ``current`` link Spark and Feast read (a SparkSource path)."""
        return dataset_root(self.root, timeframe) / CURRENT

    def _features(self, timeframe: str) -> pl.LazyFrame | None:
        return scan(self.root, timeframe)

    def write_token(self, timeframe: str) -> tuple:
        """The local token's generation and bars file (see LocalStore), and the committed feature
        version's name (new per write, Spark's build included)."""
        version = current(self.root, timeframe)
        return *super().write_token(timeframe)[:2], version.name if version is not None else None

    def write_features(self, timeframe, features: pl.DataFrame) -> WriteResult:
        schema = feature_schema()
        lf = self._features(timeframe)
        old = lf.collect() if lf is not None else pl.DataFrame(schema=schema)
        merged, res = merge_upsert(old, features.select(list(schema)), ["symbol", "time"],
                                   keep_column="created_timestamp")
        if res.changed:
            version = new_version(self.root, timeframe)
            version.mkdir()
            try:
                merged.sort(["symbol", "time"]).write_parquet(version / "part-00000-mt5lab.parquet",
                                                              compression="zstd", statistics=True)
                commit(self.root, timeframe, version)
            except OSError as exc:
                discard(version)
                raise StoreError(f"cannot write {version}: {exc.strerror or exc}") from None
            except BaseException:
                discard(version)
                raise
        return res

    def read_features(self, timeframe, symbols=None, start=None, end=None, columns=None):
        lf = self._features(timeframe)
        if lf is None:
            frame = pl.DataFrame(schema=feature_schema())
            return frame.select(columns) if columns else frame
        lf = _filter(lf, "event_timestamp", symbols, start, end, end_inclusive=True)
        if columns:
            lf = lf.select(list(dict.fromkeys(["symbol", "event_timestamp", *columns])))
        frame = lf.sort(["symbol", "event_timestamp"]).collect()
        return frame.select(list(columns)) if columns else frame

    def latest_features(self, timeframe, symbols=None) -> pl.DataFrame:
        lf = self._features(timeframe)
        if lf is None:
            return pl.DataFrame(schema=feature_schema())
        lf = _filter(lf, "event_timestamp", symbols, None, None, True)
        return lf.sort(["symbol", "event_timestamp"]).group_by("symbol", maintain_order=True).last().collect()

    def counts(self) -> dict[str, int]:
        out = {k: v for k, v in super().counts().items() if k.startswith("bars_")}
        base = Path(self.root) / "offline" / "spark" / "features"
        if base.exists():
            for p in sorted(base.glob("timeframe=*")):
                tf = p.name.split("=", 1)[1]
                lf = self._features(tf)
                if lf is not None:
                    out[f"features_{tf.lower()}"] = lf.select(pl.len()).collect().item()
        return out

    def feast_source(self, timeframe: str):
        from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource

        tf = check_timeframe(timeframe)
        return SparkSource(
            name=f"features_{tf.lower()}",
            path=str(self.features_dir(tf)),
            file_format="parquet",
            timestamp_field="event_timestamp",
            created_timestamp_column="created_timestamp",
            description=f"mt5lab {tf} feature rows built on Spark (Parquet dataset), one per closed bar.",
        )
