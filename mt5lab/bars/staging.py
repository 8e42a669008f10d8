"""Phase 1 of ingest: every input streamed, validated and staged, before anything touches a store.

Every file streams through :func:`mt5lab.bars.readers.iter_bars` in batches. Each batch is validated
by :func:`mt5lab.bars.validate.validate_bars` together with the last bar of every series seen so far,
so the duplicate and ordering rules (and the gap report) see across batch boundaries, then appended as
one row group to a staging Parquet file in a temporary directory. In-memory inputs (the bundled
samples) are staged the same way (:func:`stage_frames`). The first bad row of any input raises. Two
inputs holding the same bar is an error naming both (:func:`_check_across`, the one place that rule
lives). The caller removes the staging directory.

Memory is bounded by ``batch_rows`` except for a file whose series interleave (a multi-symbol CSV
not sorted by symbol): its staged bars are sorted once before they are merged (O(rows)). The gap
report is exact; the "suspicious" outlier median is per batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from mt5lab.bars.readers import iter_bars
from mt5lab.bars.validate import ValidationReport, validate_bars
from mt5lab.catalog import BAR_COLUMNS, BAR_SCHEMA
from mt5lab.errors import BarValidationError
from mt5lab.progress import bar
from mt5lab.storage.base import merge_sorted, parquet_batches

BATCH_ROWS = 100_000


@dataclass
class Staged:
    """Validated bars on disk: one Parquet file per input, each sorted by (symbol, time) if ``sorted``."""

    dir: Path
    files: list[Path] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    sorted: list[bool] = field(default_factory=list)
    ranges: list[pl.DataFrame] = field(default_factory=list)  # symbol, lo, hi per input
    reports: list = field(default_factory=list)
    rows: int = 0

    def add(self, file: Path, source: str, in_order: bool, ranges: pl.DataFrame, report, rows: int) -> None:
        """Record one staged input."""
        self.files.append(file)
        self.sources.append(source)
        self.sorted.append(bool(in_order))
        self.ranges.append(ranges)
        self.reports.append(report)
        self.rows += rows


def _ranges(frame: pl.DataFrame) -> pl.DataFrame:
    """First and last bar time per symbol (``symbol, lo, hi``)."""
    return frame.group_by("symbol").agg(lo=pl.col("time").min(), hi=pl.col("time").max())


def _merge_reports(parts: list, rows: int):
    firsts = [p.first_time for p in parts if p.first_time is not None]
    lasts = [p.last_time for p in parts if p.last_time is not None]
    return ValidationReport(rows=rows, symbols=tuple(sorted({s for p in parts for s in p.symbols})),
                            first_time=min(firsts, default=None), last_time=max(lasts, default=None),
                            gaps=pl.concat([p.gaps for p in parts]),
                            suspicious=pl.concat([p.suspicious for p in parts]),
                            server_tz=parts[0].server_tz if parts else "UTC")


def _ascending() -> pl.Expr:
    """Rows strictly increasing in (symbol, time)."""
    s, t = pl.col("symbol"), pl.col("time")
    return ((s > s.shift(1)) | ((s == s.shift(1)) & (t > t.shift(1)))).slice(1).all()


def _stage_file(path, out: Path, staged: Staged, *, symbol, timeframe, format, server_tz, calendar,
                batch_rows, progress) -> None:
    carry: pl.DataFrame | None = None  # last bar of each series so far (already validated)
    parts, rows, in_order, writer, prev, rng = [], 0, True, None, None, None
    try:
        batches = iter_bars(path, symbol=symbol, timeframe=timeframe, format=format, server_tz=server_tz,
                            batch_rows=batch_rows)
        for batch in bar(batches, f"validate {Path(path).name}", "batch", progress):
            frame = batch if carry is None else pl.concat([carry, batch])
            rep = validate_bars(frame, source=str(path), calendar=calendar, server_tz=batches.grid_tz)
            if carry is not None:  # rows of the carry were reported with their own batch
                rep.suspicious = rep.suspicious.filter(~pl.col("source_row").is_in(carry["source_row"].implode()))
            rep.rows = batch.height
            parts.append(rep)
            # Sorted by (symbol, time) overall? Within the batch and across the batch boundary.
            keys = batch.select("symbol", "time") if prev is None else pl.concat([prev, batch.select("symbol", "time")])
            in_order = in_order and keys.select(_ascending()).item()
            prev = batch.select("symbol", "time").tail(1)
            last = batch.group_by("symbol", "timeframe", maintain_order=True).last().select(batch.columns)
            carry = last if carry is None else pl.concat([carry.join(last, on=["symbol", "timeframe"], how="anti"), last])
            r = _ranges(batch)
            rng = r if rng is None else pl.concat([rng, r]).group_by("symbol").agg(pl.col("lo").min(), pl.col("hi").max())
            table = batch.to_arrow()
            if writer is None:
                writer = pq.ParquetWriter(out, table.schema, compression="lz4")
            writer.write_table(table)
            rows += batch.height
    finally:
        if writer is not None:
            writer.close()
    staged.add(out, str(path), in_order, rng, _merge_reports(parts, rows), rows)


def _stage_frame(frame: pl.DataFrame, source: str, out: Path, staged: Staged, *, calendar: str,
                 server_tz: str | None) -> None:
    """One in-memory input (already canonical): validated whole, staged like a file."""
    rep = validate_bars(frame, source=source, calendar=calendar, server_tz=server_tz)
    frame.with_columns(source_row=pl.int_range(1, frame.height + 1, dtype=pl.Int64)).write_parquet(
        out, compression="lz4")
    in_order = frame.select("symbol", "time").select(_ascending()).item()  # True for 0 or 1 rows
    staged.add(out, source, in_order, _ranges(frame), rep, frame.height)


def stage_frames(frames: Iterable[tuple[str, pl.DataFrame]], workdir: Path, *,
                 calendars: dict[str, str] | None = None, server_tz: str | None = None) -> Staged:
    """Phase 1 for in-memory inputs ``(source, canonical frame)``: validate, stage, check across inputs.

    ``calendars`` maps a source to its market calendar (default fx); ``server_tz`` is the clock whose
    grid the bars are on (see :func:`mt5lab.bars.validate.validate_bars`)."""
    staged = Staged(Path(workdir))
    for i, (source, frame) in enumerate(frames):
        _stage_frame(frame, source, staged.dir / f"input-{i}.parquet", staged,
                     calendar=(calendars or {}).get(source, "fx"), server_tz=server_tz)
    _check_across(staged)
    return staged


def staged_frame(staged: Staged) -> pl.DataFrame:
    """Every staged bar in one canonical frame, inputs in order (for callers that need it in memory)."""
    if not staged.files:
        return pl.DataFrame(schema=BAR_SCHEMA)
    return pl.concat([pl.read_parquet(f, columns=list(BAR_COLUMNS)) for f in staged.files], rechunk=True)


def _check_across(staged: Staged) -> None:
    """Two inputs holding the same (symbol, time): an error naming both. The one place this rule lives."""
    for b in range(len(staged.files)):
        for a in range(b):
            over = staged.ranges[a].join(staged.ranges[b], on="symbol", suffix="_b").filter(
                (pl.col("lo") <= pl.col("hi_b")) & (pl.col("lo_b") <= pl.col("hi")))
            for sym, lo, hi, lo_b, hi_b in over.iter_rows():
                window = (pl.col("symbol") == sym) & pl.col("time").is_between(max(lo, lo_b), min(hi, hi_b))
                x = pl.scan_parquet(staged.files[a]).filter(window).select("time", "source_row")
                y = pl.scan_parquet(staged.files[b]).filter(window).select("time", "source_row")
                hit = y.join(x, on="time", suffix="_a").sort("source_row").head(1).collect()
                if hit.height:
                    t, row_b, row_a = hit.row(0)
                    raise BarValidationError(staged.sources[b], row_b, "duplicate time across inputs",
                                             f"{sym} {staged_tf(staged)} {t} is also in "
                                             f"{staged.sources[a]} row {row_a}")


def staged_tf(staged: Staged) -> str:
    return pl.scan_parquet(staged.files[0]).select(pl.col("timeframe").first()).collect().item()


def stage(paths: Iterable[str | Path], workdir: Path, *, symbol: str | None, timeframe: str,
          format: str = "auto", server_tz: str | None = None, calendar: str = "fx",
          batch_rows: int = BATCH_ROWS, progress: bool = True) -> Staged:
    """Phase 1: read and validate every file in batches into ``workdir``; raise on the first bad row."""
    staged = Staged(Path(workdir))
    for i, path in enumerate(paths):
        _stage_file(path, staged.dir / f"input-{i}.parquet", staged, symbol=symbol, timeframe=timeframe,
                    format=format, server_tz=server_tz, calendar=calendar, batch_rows=batch_rows,
                    progress=progress)
    _check_across(staged)
    return staged


def sorted_batches(staged: Staged, batch_rows: int) -> Iterator[pl.DataFrame]:
    """All staged bars, sorted by (symbol, time), in batches (a k-way merge of the inputs)."""
    files = list(staged.files)
    for i, ok in enumerate(staged.sorted):
        if not ok:  # interleaved series: one sort, O(rows) memory
            fixed = staged.dir / f"sorted-{i}.parquet"
            pl.scan_parquet(files[i]).sort("symbol", "time").sink_parquet(fixed, row_group_size=batch_rows)
            files[i] = fixed
    streams = [parquet_batches(f, batch_rows) for f in files]
    merged = streams[0]
    for s in streams[1:]:
        merged = merge_sorted(merged, s)
    yield from merged
