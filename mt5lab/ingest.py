"""Bars in: read, validate, then one all-or-nothing upsert into the offline store."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from tqdm.auto import tqdm

from mt5lab.bars import BAR_COLUMNS, canonical
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

    frames, reports = [], []
    for path in tqdm(list(paths), desc="read", unit="file", disable=not progress):
        bars = read_bars(path, symbol=symbol, timeframe=timeframe, format=format, server_tz=server_tz)
        reports.append(validate_bars(bars, source=str(path), calendar=calendar))
        frames.append(bars.select(BAR_COLUMNS))
    return _combine(frames, reports)


def load_samples(names: Iterable[str] | None = None) -> tuple[pl.DataFrame, list]:
    """The bundled real samples, validated like any file."""
    from mt5lab.validate import validate_bars

    frames, reports = [], []
    for name in names or SAMPLES:
        bars = load_sample(name)
        reports.append(validate_bars(bars, source=f"sample:{name}", calendar=SAMPLES[name].calendar))
        frames.append(bars)
    return _combine(frames, reports)


def _combine(frames: list[pl.DataFrame], reports: list) -> tuple[pl.DataFrame, list]:
    from mt5lab.validate import validate_bars

    bars = pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema=dict.fromkeys(BAR_COLUMNS))
    if len(frames) > 1:  # two files may overlap: the union must obey the rules too
        validate_bars(bars.sort(["symbol", "timeframe", "time"]), source="<all inputs>",
                      calendar="24x7")
    return bars, reports


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
