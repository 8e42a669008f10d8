"""Bars in: read, validate, then one all-or-nothing upsert into the offline store."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from mt5lab.bars import BAR_COLUMNS, canonical
from mt5lab.progress import bar
from mt5lab.samples import SAMPLES, load_sample
from mt5lab.storage import OfflineStore, WriteResult


@dataclass
class IngestResult:
    rows: int
    write: WriteResult
    reports: list  # mt5lab.validate.ValidationReport, one per source

    def summary(self) -> dict:
        return {"rows": self.rows, "inserted": self.write.inserted, "updated": self.write.updated,
                "unchanged": self.write.unchanged,
                "gaps": sum(r.gaps.height for r in self.reports)}


def load_sources(paths: Iterable[str | Path], *, symbol: str | None, timeframe: str,
                 format: str = "auto", server_tz: str = "UTC", calendar: str = "fx",
                 progress: bool = True) -> tuple[pl.DataFrame, list]:
    """Read and validate every file; raise on the first bad row of any file. Nothing is written."""
    from mt5lab.readers import read_bars
    from mt5lab.validate import validate_bars

    frames, reports, sources = [], [], []
    for path in bar(list(paths), "read", "file", progress):
        bars = read_bars(path, symbol=symbol, timeframe=timeframe, format=format, server_tz=server_tz)
        reports.append(validate_bars(bars, source=str(path), calendar=calendar))
        frames.append(bars)
        sources.append(str(path))
    return _combine(frames, reports, sources)


def load_samples(names: Iterable[str] | None = None) -> tuple[pl.DataFrame, list]:
    """The bundled real samples, validated like any file."""
    from mt5lab.validate import validate_bars

    frames, reports, sources = [], [], []
    for name in names or SAMPLES:
        bars = load_sample(name)
        source = f"sample:{name}"
        reports.append(validate_bars(bars, source=source, calendar=SAMPLES[name].calendar))
        frames.append(bars)
        sources.append(source)
    return _combine(frames, reports, sources)


def _combine(frames: list[pl.DataFrame], reports: list, sources: list[str]) -> tuple[pl.DataFrame, list]:
    """Concatenate validated inputs; two inputs holding the same bar is an error naming both."""
    from mt5lab.errors import BarValidationError

    if not frames:
        return pl.DataFrame(schema=dict.fromkeys(BAR_COLUMNS)), reports
    tagged = [f.with_columns(pl.lit(i).alias("__input"),
                             (pl.col("source_row") if "source_row" in f.columns
                              else pl.int_range(1, f.height + 1)).cast(pl.Int64).alias("__row"))
              for i, f in enumerate(frames)]
    union = pl.concat([t.select([*BAR_COLUMNS, "__input", "__row"]) for t in tagged], how="vertical")
    dup = union.filter(pl.struct(["symbol", "timeframe", "time"]).is_duplicated())
    if dup.height:
        first = dup.sort(["symbol", "timeframe", "time", "__input"]).head(2)
        a, b = first.row(0, named=True), first.row(1, named=True)
        raise BarValidationError(sources[b["__input"]], b["__row"], "duplicate time across inputs",
                                 f"{b['symbol']} {b['timeframe']} {b['time']} is also in "
                                 f"{sources[a['__input']]} row {a['__row']}")
    return union.select(BAR_COLUMNS), reports


def ingest_frame(store: OfflineStore, bars, timeframe: str | None = None,
                 source: str = "<frame>", calendar: str = "fx") -> IngestResult:
    """Validate an in-memory frame and upsert it."""
    from mt5lab.validate import validate_bars

    frame = canonical(bars, timeframe)
    report = validate_bars(frame, source=source, calendar=calendar)
    return write(store, frame, [report])


def write(store: OfflineStore, bars: pl.DataFrame, reports: list) -> IngestResult:
    with store.lock():
        res = store.write_bars(canonical(bars))
    return IngestResult(bars.height, res, reports)
