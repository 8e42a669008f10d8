"""Bars in: every input read and validated (staged), then written once: all or nothing.

Phase 1 (:mod:`mt5lab.bars.staging`) reads, validates and stages every input; nothing touches the
store. Phase 2 (:func:`write_staged`) is one write under the store's writer lock:

- local store: the stored timeframe file and the staged bars are both sorted by (symbol, time), so
  they are merged window by window (two sorted streams, upserting per window with
  :func:`mt5lab.storage.base.merge_upsert`) into a temporary file that replaces the old one with one
  ``os.replace``; unchanged input leaves the old file untouched. Memory: about two batches.
- PostgreSQL: the staged batches upserted one after another inside ONE transaction (the store's
  write path, :mod:`mt5lab.storage.pg_write`); a failure anywhere rolls all of them back.
- any other store: ``store.write_bars`` of the staged bars (that store's own transaction).

Every path that takes bar files goes through the same staging (``mt5lab ingest`` via
:func:`ingest_files`, ``mt5lab update`` and Python callers via :func:`read_files`), so the rules,
including "the same bar in two inputs", are written once.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from mt5lab.bars.samples import SAMPLES, load_sample
from mt5lab.bars.schema import canonical
from mt5lab.bars.staging import (
    BATCH_ROWS,
    Staged,
    _batches,
    _merge_streams,
    _sorted_batches,
    stage,
    stage_frames,
    staged_frame,
    staged_tf,
)
from mt5lab.catalog import BAR_COLUMNS
from mt5lab.errors import StoreError
from mt5lab.storage import OfflineStore, WriteResult


@dataclass
class IngestResult:
    rows: int
    write: WriteResult
    reports: list  # mt5lab.bars.validate.ValidationReport, one per source

    def summary(self) -> dict:
        return {"rows": self.rows, "inserted": self.write.inserted, "updated": self.write.updated,
                "unchanged": self.write.unchanged,
                "gaps": sum(r.gaps.height for r in self.reports)}


def ingest_files(store: OfflineStore, paths: Iterable[str | Path], *, symbol: str | None, timeframe: str,
                 format: str = "auto", server_tz: str = "UTC", calendar: str = "fx",
                 batch_rows: int = BATCH_ROWS, progress: bool = True) -> IngestResult:
    """Validate every file (streamed, bounded memory), then write all of them at once, or nothing."""
    work = Path(tempfile.mkdtemp(prefix="mt5lab-ingest-"))
    try:
        staged = stage(paths, work, symbol=symbol, timeframe=timeframe, format=format, server_tz=server_tz,
                       calendar=calendar, batch_rows=batch_rows, progress=progress)
        res = write_staged(store, staged, batch_rows)
        return IngestResult(staged.rows, res, staged.reports)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def read_files(paths: Iterable[str | Path], *, symbol: str | None, timeframe: str, format: str = "auto",
               server_tz: str = "UTC", calendar: str = "fx", batch_rows: int = BATCH_ROWS,
               progress: bool = True) -> tuple[pl.DataFrame, list]:
    """Every file read and validated exactly as :func:`ingest_files` does, returned as one canonical
    frame (inputs in order) and one validation report per file. Nothing is written.

    Raises BarValidationError (file, row, rule) on the first bad row of any file, or when two files
    hold the same bar; ConfigError for a bad argument."""
    work = Path(tempfile.mkdtemp(prefix="mt5lab-read-"))
    try:
        staged = stage(paths, work, symbol=symbol, timeframe=timeframe, format=format, server_tz=server_tz,
                       calendar=calendar, batch_rows=batch_rows, progress=progress)
        return staged_frame(staged), staged.reports
    finally:
        shutil.rmtree(work, ignore_errors=True)


def load_samples(names: Iterable[str] | None = None) -> tuple[pl.DataFrame, list]:
    """The bundled real samples, validated and checked across inputs like any files."""
    names = [n.upper() for n in (names or SAMPLES)]
    work = Path(tempfile.mkdtemp(prefix="mt5lab-samples-"))
    try:
        staged = stage_frames([(f"sample:{n}", load_sample(n)) for n in names], work,
                              calendars={f"sample:{n}": SAMPLES[n].calendar for n in names})
        return staged_frame(staged), staged.reports
    finally:
        shutil.rmtree(work, ignore_errors=True)


def ingest_frame(store: OfflineStore, bars, timeframe: str | None = None,
                 source: str = "<frame>", calendar: str = "fx") -> IngestResult:
    """Validate an in-memory frame and upsert it."""
    from mt5lab.bars.validate import validate_bars

    frame = canonical(bars, timeframe)
    report = validate_bars(frame, source=source, calendar=calendar)
    return write(store, frame, [report])


def write(store: OfflineStore, bars: pl.DataFrame, reports: list) -> IngestResult:
    with store.lock():
        res = store.write_bars(canonical(bars))
    return IngestResult(bars.height, res, reports)


def write_staged(store: OfflineStore, staged: Staged, batch_rows: int = BATCH_ROWS) -> WriteResult:
    """Phase 2: one all-or-nothing write of the staged bars, under the store's writer lock."""
    from mt5lab.storage.local import LocalStore

    if not staged.files:
        return WriteResult(0, 0, 0)
    from mt5lab.storage.postgres import PostgresStore

    with store.lock():
        if isinstance(store, LocalStore):
            return _write_local(store, staged, batch_rows)
        if isinstance(store, PostgresStore):
            return _write_postgres(store, staged, batch_rows)
        frame = pl.concat([pl.read_parquet(f, columns=list(BAR_COLUMNS)) for f in staged.files])
        return store.write_bars(frame)


def _write_local(store, staged: Staged, batch_rows: int) -> WriteResult:
    tf = staged_tf(staged)
    path = store.bars_path(tf)
    path.parent.mkdir(parents=True, exist_ok=True)
    old = _batches(path, batch_rows) if path.exists() else iter(())
    totals: list[WriteResult] = []
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".parquet", dir=path.parent)
    os.close(fd)
    writer, pending, n = None, [], 0
    try:
        for part in _merge_streams(old, _sorted_batches(staged, batch_rows), totals):
            pending.append(part)
            n += part.height
            if n >= 256_000:
                writer = _flush(writer, tmp, pending)
                pending, n = [], 0
        writer = _flush(writer, tmp, pending)
        if writer is not None:
            writer.close()
            writer = None
        res = WriteResult(*(sum(getattr(r, f) for r in totals) for f in ("inserted", "updated", "unchanged")))
        if res.changed:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        return res
    except OSError as exc:
        raise StoreError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if writer is not None:
            writer.close()
        Path(tmp).unlink(missing_ok=True)


def _flush(writer, tmp: str, pending: list[pl.DataFrame]):
    if not pending:
        return writer
    table = pl.concat(pending).select(list(BAR_COLUMNS)).to_arrow()
    if writer is None:
        writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
    writer.write_table(table)
    return writer


def _write_postgres(store, staged: Staged, batch_rows: int) -> WriteResult:
    """Every batch upserted in ONE transaction (the store's ``_write``): all or nothing, O(batch)."""
    from mt5lab.storage.pg_schema import bars_table
    from mt5lab.storage.pg_write import sorted_unique, write_table

    tf = staged_tf(staged)
    parts: list[WriteResult] = []
    with store._write() as cur:
        for batch in _sorted_batches(staged, batch_rows):
            parts.append(write_table(cur, bars_table(tf), sorted_unique(batch.drop("timeframe"), f"bars {tf}")))
    return WriteResult(*(sum(getattr(r, f) for r in parts) for f in ("inserted", "updated", "unchanged")))
