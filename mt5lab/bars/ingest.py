"""Bars in: every input read and validated (staged), then written once: all or nothing.

Phase 1 (:mod:`mt5lab.bars.staging`) reads, validates and stages every input; nothing touches the
store. Phase 2 (:func:`write_staged`) is one write under the store's writer lock: the staged bars,
merged into one stream sorted by (symbol, time), go to the store's
:meth:`~mt5lab.storage.base.OfflineStore.write_bar_batches`: on the local store a window-by-window
merge with the stored file and one atomic ``os.replace`` (memory: about two batches), on PostgreSQL
every batch upserted inside ONE transaction (a failure anywhere rolls all of them back).

Every path that takes bar files goes through the same staging (``mt5lab ingest`` via
:func:`ingest_files`, ``mt5lab update`` and Python callers via :func:`read_files`), so the rules,
including "the same bar in two inputs", are written once.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from mt5lab.bars.samples import SAMPLES, load_sample
from mt5lab.bars.schema import canonical, grid_tz
from mt5lab.bars.staging import (
    BATCH_ROWS,
    Staged,
    sorted_batches,
    stage,
    stage_frames,
    staged_frame,
    staged_tf,
)
from mt5lab.bars.stored_grid import check_stored_grid
from mt5lab.bars.validate import validate_bars
from mt5lab.storage import OfflineStore, WriteResult


def _workdir(what: str):
    """A private staging directory, removed afterwards whatever happens."""
    return tempfile.TemporaryDirectory(prefix=f"mt5lab-{what}-", ignore_cleanup_errors=True)


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
                 format: str = "auto", server_tz: str | None = None, calendar: str = "fx",
                 batch_rows: int = BATCH_ROWS, progress: bool = True) -> IngestResult:
    """Validate every file (streamed, bounded memory), then write all of them at once, or nothing.

    ``server_tz``: the broker's server clock (see :mod:`mt5lab.bars.clock`); required for MT5/MT4
    exports unless ``MT5LAB_SERVER_TZ`` is set."""
    with _workdir("ingest") as work:
        staged = stage(paths, work, symbol=symbol, timeframe=timeframe, format=format, server_tz=server_tz,
                       calendar=calendar, batch_rows=batch_rows, progress=progress)
        for src, rng, rep in zip(staged.sources, staged.ranges, staged.reports, strict=True):
            check_stored_grid(store, timeframe.upper(), rng, rep.server_tz, src)
        res = write_staged(store, staged, batch_rows)
        return IngestResult(staged.rows, res, staged.reports)


def read_files(paths: Iterable[str | Path], *, symbol: str | None, timeframe: str, format: str = "auto",
               server_tz: str | None = None, calendar: str = "fx", batch_rows: int = BATCH_ROWS,
               progress: bool = True) -> tuple[pl.DataFrame, list]:
    """Every file read and validated exactly as :func:`ingest_files` does, returned as one canonical
    frame (inputs in order) and one validation report per file. Nothing is written.

    Raises BarValidationError (file, row, rule) on the first bad row of any file, or when two files
    hold the same bar; ConfigError for a bad argument."""
    with _workdir("read") as work:
        staged = stage(paths, work, symbol=symbol, timeframe=timeframe, format=format, server_tz=server_tz,
                       calendar=calendar, batch_rows=batch_rows, progress=progress)
        return staged_frame(staged), staged.reports


def load_samples(names: Iterable[str] | None = None) -> tuple[pl.DataFrame, list]:
    """The bundled real samples, validated and checked across inputs like any files."""
    names = [n.upper() for n in (names or SAMPLES)]
    with _workdir("samples") as work:
        staged = stage_frames([(f"sample:{n}", load_sample(n)) for n in names], work,
                              calendars={f"sample:{n}": SAMPLES[n].calendar for n in names},
                              server_tz="UTC")  # the samples are published in UTC
        return staged_frame(staged), staged.reports


def ingest_frame(store: OfflineStore, bars, timeframe: str | None = None,
                 source: str = "<frame>", calendar: str = "fx", server_tz: str | None = None) -> IngestResult:
    """Validate an in-memory frame and upsert it. Naive or integer times are on the server clock
    ``server_tz`` (see :func:`mt5lab.bars.schema.canonical`), which also sets the bar grid."""
    frame = canonical(bars, timeframe, server_tz=server_tz, source=source)
    report = validate_bars(frame, source=source, calendar=calendar, server_tz=grid_tz(bars, server_tz))
    return write(store, frame, [report])


def write(store: OfflineStore, bars: pl.DataFrame, reports: list) -> IngestResult:
    with store.lock():
        res = store.write_bars(canonical(bars))
    return IngestResult(bars.height, res, reports)


def write_staged(store: OfflineStore, staged: Staged, batch_rows: int = BATCH_ROWS) -> WriteResult:
    """Phase 2: one all-or-nothing write of the staged bars, under the store's writer lock, through
    :meth:`mt5lab.storage.base.OfflineStore.write_bar_batches` (sorted batches, bounded memory)."""
    if not staged.files:
        return WriteResult(0, 0, 0)
    with store.lock():
        return store.write_bar_batches(staged_tf(staged), sorted_batches(staged, batch_rows),
                                       batch_rows=batch_rows)
