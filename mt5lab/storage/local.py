"""The embedded default offline store: Parquet files partitioned by timeframe, under the data dir.

Layout: ``<data>/offline/bars/timeframe=<TF>/bars.parquet`` and
``<data>/offline/features/timeframe=<TF>/features.parquet``. Symbols are column values, never file
names, so no symbol can reach the file system. Every write builds the new file next to the old one
and swaps it in with one atomic ``os.replace``: a crash or error leaves the old file whole. The cost
is a rewrite of the timeframe's file per write, fine up to ~10M bars; beyond that, use the postgres
profile.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
from filelock import FileLock

from mt5lab.catalog import BAR_COLUMNS, BAR_SCHEMA, KEY, check_timeframe
from mt5lab.errors import StoreError
from mt5lab.storage.base import (
    OfflineStore,
    WriteResult,
    feature_schema,
    merge_sorted,
    merge_upsert,
    parquet_batches,
)


class LocalStore(OfflineStore):
    profile = "local"

    def __init__(self, root: Path):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    # -- paths -------------------------------------------------------------------------------
    def bars_path(self, timeframe: str) -> Path:
        return self.root / "offline" / "bars" / f"timeframe={check_timeframe(timeframe)}" / "bars.parquet"

    def features_path(self, timeframe: str) -> Path:
        tf = check_timeframe(timeframe)
        return self.root / "offline" / "features" / f"timeframe={tf}" / "features.parquet"

    @contextmanager
    def lock(self):
        """The writer lock: an OS file lock on ``<root>/.mt5lab.lock`` (``flock`` on POSIX, ``msvcrt``
        on Windows, through the ``filelock`` library), held across processes; not re-entrant."""
        self.root.mkdir(parents=True, exist_ok=True)
        with FileLock(self.root / ".mt5lab.lock"):
            yield

    # -- io ------------------------------------------------------------------------------------
    @staticmethod
    def _read(path: Path, schema: dict) -> pl.DataFrame:
        if not path.exists():
            return pl.DataFrame(schema=schema)
        return pl.read_parquet(path)

    @staticmethod
    def _atomic_write(path: Path, frame: pl.DataFrame) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".parquet", dir=path.parent)
        os.close(fd)
        try:
            frame.write_parquet(tmp, compression="zstd", statistics=True, row_group_size=256_000)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except (OSError, pl.exceptions.ComputeError) as exc:  # polars wraps IO errors (disk full)
            Path(tmp).unlink(missing_ok=True)
            reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
            raise StoreError(f"cannot write {path}: {reason}") from None
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # -- bars ----------------------------------------------------------------------------------
    def write_bars(self, bars: pl.DataFrame) -> WriteResult:
        total = WriteResult(0, 0, 0)
        for (tf,), part in bars.partition_by("timeframe", as_dict=True).items():
            path = self.bars_path(tf)
            old = self._read(path, BAR_SCHEMA)
            merged, res = merge_upsert(old, part.select(list(BAR_SCHEMA)), list(KEY))
            if res.changed:
                self._atomic_write(path, merged.sort(["symbol", "time"]))
                self._bump(tf)
            total += res
        return total

    def write_bar_batches(self, timeframe, batches, batch_rows: int = 100_000) -> WriteResult:
        """Streamed upsert: the stored file and the sorted ``batches`` are merged window by window
        (:func:`~mt5lab.storage.base.merge_sorted`) into a temporary file that replaces the old one with
        one ``os.replace``; unchanged input leaves the old file untouched. Memory: about two batches."""
        path = self.bars_path(check_timeframe(timeframe))
        path.parent.mkdir(parents=True, exist_ok=True)
        old = parquet_batches(path, batch_rows) if path.exists() else iter(())
        totals: list[WriteResult] = []
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".parquet", dir=path.parent)
        os.close(fd)
        writer, pending, n = None, [], 0
        try:
            for part in merge_sorted(old, batches, totals):
                pending.append(part)
                n += part.height
                if n >= 256_000:
                    writer = _flush(writer, tmp, pending)
                    pending, n = [], 0
            writer = _flush(writer, tmp, pending)
            if writer is not None:
                writer.close()
                writer = None
            res = sum(totals, WriteResult(0, 0, 0))
            if res.changed:
                with open(tmp, "rb") as fh:
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
                self._bump(timeframe)
            return res
        except OSError as exc:
            raise StoreError(f"cannot write {path}: {exc.strerror or exc}") from None
        finally:
            if writer is not None:
                writer.close()
            Path(tmp).unlink(missing_ok=True)

    def read_bars(self, timeframe, symbols=None, start=None, end=None) -> pl.DataFrame:
        path = self.bars_path(timeframe)
        if not path.exists():
            return pl.DataFrame(schema=BAR_SCHEMA)
        lf = pl.scan_parquet(path)
        lf = _filter(lf, "time", symbols, start, end, end_inclusive=False)
        return lf.sort(["symbol", "time"]).collect()

    # -- features ------------------------------------------------------------------------------
    def _generation_path(self, timeframe: str) -> Path:
        return self.root / "offline" / ".generation" / check_timeframe(timeframe)

    def _bump(self, timeframe: str) -> None:
        """A new random generation for ``timeframe``, written after a changing write replaced a file:
        a file system's mtime granularity and inode reuse cannot hide a write. Best effort: when it
        cannot be written (disk full), it is removed, which changes the token too."""
        path = self._generation_path(timeframe)
        tmp = path.with_name(f".{path.name}-{secrets.token_hex(4)}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(secrets.token_hex(16))
            os.replace(tmp, path)
        except OSError:
            for p in (tmp, path):
                try:
                    p.unlink(missing_ok=True)
                except OSError:
                    pass

    def write_token(self, timeframe: str) -> tuple:
        """The timeframe's generation (random, replaced by every changing write), with the inode,
        size and mtime (ns) of its bars and features files."""
        try:
            out: list = [self._generation_path(timeframe).read_text()]
        except FileNotFoundError:
            out = [None]
        for path in (self.bars_path(timeframe), self.features_path(timeframe)):
            try:
                st = path.stat()
                out.append((st.st_ino, st.st_size, st.st_mtime_ns))
            except FileNotFoundError:
                out.append(None)
        return tuple(out)

    def write_features(self, timeframe, features: pl.DataFrame) -> WriteResult:
        path = self.features_path(timeframe)
        schema = feature_schema()
        old = self._read(path, schema)
        merged, res = merge_upsert(old, features.select(list(schema)), ["symbol", "time"],
                                   keep_column="created_timestamp")
        if res.changed:
            self._atomic_write(path, merged.sort(["symbol", "time"]))
            self._bump(timeframe)
        return res

    def read_features(self, timeframe, symbols=None, start=None, end=None, columns=None):
        path = self.features_path(timeframe)
        if not path.exists():
            frame = pl.DataFrame(schema=feature_schema())
            return frame.select(columns) if columns else frame
        lf = _filter(pl.scan_parquet(path), "event_timestamp", symbols, start, end, end_inclusive=True)
        keep = list(columns) if columns else None
        if keep is not None:
            lf = lf.select(list(dict.fromkeys(["symbol", "event_timestamp", *keep])))
        frame = lf.collect()
        # Files are written sorted by (symbol, time), so a filtered scan is already in order; the
        # check is O(n) and much cheaper than sorting millions of rows with their payload again.
        if not _sorted_by_symbol_time(frame, "event_timestamp"):
            frame = frame.sort(["symbol", "event_timestamp"])
        return frame.select(keep) if keep is not None else frame

    def latest_features(self, timeframe, symbols=None) -> pl.DataFrame:
        path = self.features_path(timeframe)
        if not path.exists():
            return pl.DataFrame(schema=feature_schema())
        lf = _filter(pl.scan_parquet(path), "event_timestamp", symbols, None, None, True)
        return (lf.sort(["symbol", "event_timestamp"]).group_by("symbol", maintain_order=True).last()
                .collect())

    def timeframes(self) -> list[str]:
        base = self.root / "offline" / "bars"
        if not base.exists():
            return []
        return sorted(p.name.split("=", 1)[1] for p in base.iterdir() if (p / "bars.parquet").exists())

    def counts(self) -> dict[str, int]:
        out = {}
        for kind in ("bars", "features"):
            base = self.root / "offline" / kind
            if base.exists():
                for p in sorted(base.glob(f"timeframe=*/{kind}.parquet")):
                    tf = p.parent.name.split("=", 1)[1]
                    out[f"{kind}_{tf.lower()}"] = pl.scan_parquet(p).select(pl.len()).collect().item()
        return out

    def feast_source(self, timeframe: str):
        from feast import FileSource

        tf = check_timeframe(timeframe)
        return FileSource(
            name=f"features_{tf.lower()}",
            path=str(self.features_path(tf)),
            timestamp_field="event_timestamp",
            created_timestamp_column="created_timestamp",
            description=f"mt5lab {tf} feature rows (Parquet), one per closed bar.",
        )


def _sorted_by_symbol_time(frame: pl.DataFrame, tcol: str) -> bool:
    """Sorted by symbol, then time? Time may only step back where the symbol changes."""
    if frame.height < 2:
        return True
    s, t = frame["symbol"], frame[tcol]
    if not s.is_sorted():
        return False
    back = (t.diff() < timedelta(0)).fill_null(False).arg_true()
    return back.len() == 0 or bool((s.gather(back) != s.gather(back - 1)).all())


def _filter(lf: pl.LazyFrame, tcol: str, symbols, start: datetime | None, end: datetime | None,
            end_inclusive: bool) -> pl.LazyFrame:
    if symbols is not None:
        lf = lf.filter(pl.col("symbol").is_in(list(symbols)))
    if start is not None:
        lf = lf.filter(pl.col(tcol) >= start)
    if end is not None:
        lf = lf.filter(pl.col(tcol) <= end if end_inclusive else pl.col(tcol) < end)
    return lf


def _flush(writer, tmp: str, pending: list[pl.DataFrame]):
    if not pending:
        return writer
    table = pl.concat(pending).select(list(BAR_COLUMNS)).to_arrow()
    if writer is None:
        writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
    writer.write_table(table)
    return writer
