"""Streaming ingest: bar files of any size in bounded memory, still all or nothing.

Phase 1, validate (nothing touches the store): every file streams through
:func:`mt5lab.readers.iter_bars` in batches. Each batch is validated by
:func:`mt5lab.validate.validate_bars` together with the last bar of every series seen so far, so the
duplicate and ordering rules (and the gap report) see across batch boundaries, then appended as one
row group to a staging Parquet file in a temporary directory. The first bad row of any file raises;
the staging directory is removed either way. Two files holding the same bar is an error naming both.

Phase 2, one write under the store's writer lock:

- local store: the stored timeframe file and the staged bars are both sorted by (symbol, time), so
  they are merged window by window (two sorted streams, upserting per window with
  :func:`mt5lab.storage.base.merge_upsert`) into a temporary file that replaces the old one with one
  ``os.replace``; unchanged input leaves the old file untouched. Memory: about two batches.
- PostgreSQL: the staged batches upserted one after another inside ONE transaction (the store's
  write path, :mod:`mt5lab.storage.pg_write`); a failure anywhere rolls all of them back.
- any other store: ``store.write_bars`` of the staged bars (that store's own transaction).

Memory is bounded by ``batch_rows`` except for a file whose series interleave (a multi-symbol CSV
not sorted by symbol): its staged bars are sorted once before the merge (O(rows)). The gap report is
exact; the "suspicious" outlier median is per batch.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from mt5lab.bars import BAR_COLUMNS, BAR_SCHEMA, KEY
from mt5lab.errors import BarValidationError, StoreError
from mt5lab.ingest import IngestResult
from mt5lab.storage.base import OfflineStore, WriteResult, merge_upsert

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


def _merge_reports(parts: list, rows: int):
    from mt5lab.validate import ValidationReport

    firsts = [p.first_time for p in parts if p.first_time is not None]
    lasts = [p.last_time for p in parts if p.last_time is not None]
    return ValidationReport(rows=rows, symbols=tuple(sorted({s for p in parts for s in p.symbols})),
                            first_time=min(firsts, default=None), last_time=max(lasts, default=None),
                            gaps=pl.concat([p.gaps for p in parts]),
                            suspicious=pl.concat([p.suspicious for p in parts]))


def _ascending() -> pl.Expr:
    """Rows strictly increasing in (symbol, time)."""
    s, t = pl.col("symbol"), pl.col("time")
    return ((s > s.shift(1)) | ((s == s.shift(1)) & (t > t.shift(1)))).slice(1).all()


def _stage_file(path, out: Path, staged: Staged, *, symbol, timeframe, format, server_tz, calendar,
                batch_rows, progress) -> None:
    from mt5lab.progress import bar
    from mt5lab.readers import iter_bars
    from mt5lab.validate import validate_bars

    carry: pl.DataFrame | None = None  # last bar of each series so far (already validated)
    parts, rows, in_order, writer, prev, rng = [], 0, True, None, None, None
    try:
        batches = iter_bars(path, symbol=symbol, timeframe=timeframe, format=format, server_tz=server_tz,
                            batch_rows=batch_rows)
        for batch in bar(batches, f"validate {Path(path).name}", "batch", progress):
            frame = batch if carry is None else pl.concat([carry, batch])
            rep = validate_bars(frame, source=str(path), calendar=calendar)
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
            r = batch.group_by("symbol").agg(lo=pl.col("time").min(), hi=pl.col("time").max())
            rng = r if rng is None else pl.concat([rng, r]).group_by("symbol").agg(pl.col("lo").min(), pl.col("hi").max())
            table = batch.to_arrow()
            if writer is None:
                writer = pq.ParquetWriter(out, table.schema, compression="lz4")
            writer.write_table(table)
            rows += batch.height
    finally:
        if writer is not None:
            writer.close()
    staged.files.append(out)
    staged.sources.append(str(path))
    staged.sorted.append(bool(in_order))
    staged.ranges.append(rng)
    staged.reports.append(_merge_reports(parts, rows))
    staged.rows += rows


def _check_across(staged: Staged) -> None:
    """Two inputs holding the same (symbol, time): an error naming both (like ``ingest._combine``)."""
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
          format: str = "auto", server_tz: str = "UTC", calendar: str = "fx",
          batch_rows: int = BATCH_ROWS, progress: bool = True) -> Staged:
    """Phase 1: read and validate every file in batches into ``workdir``; raise on the first bad row."""
    staged = Staged(Path(workdir))
    for i, path in enumerate(paths):
        _stage_file(path, staged.dir / f"input-{i}.parquet", staged, symbol=symbol, timeframe=timeframe,
                    format=format, server_tz=server_tz, calendar=calendar, batch_rows=batch_rows,
                    progress=progress)
    _check_across(staged)
    return staged


def _sorted_batches(staged: Staged, batch_rows: int) -> Iterator[pl.DataFrame]:
    """All staged bars, sorted by (symbol, time), in batches (a k-way merge of the inputs)."""
    files = list(staged.files)
    for i, ok in enumerate(staged.sorted):
        if not ok:  # interleaved series: one sort, O(rows) memory
            fixed = staged.dir / f"sorted-{i}.parquet"
            pl.scan_parquet(files[i]).sort("symbol", "time").sink_parquet(fixed, row_group_size=batch_rows)
            files[i] = fixed
    streams = [_batches(f, batch_rows) for f in files]
    merged = streams[0]
    for s in streams[1:]:
        merged = _merge_streams(merged, s, None)
    yield from merged


def _batches(path: Path, batch_rows: int) -> Iterator[pl.DataFrame]:
    pf = pq.ParquetFile(path)
    for b in pf.iter_batches(batch_size=batch_rows, columns=list(BAR_COLUMNS)):
        if b.num_rows:
            yield pl.from_arrow(b).cast(BAR_SCHEMA)


def _le(cut: tuple) -> pl.Expr:
    sym, t = pl.col("symbol"), pl.col("time")
    return (sym < cut[0]) | ((sym == cut[0]) & (t <= cut[1]))


def _merge_streams(old: Iterator[pl.DataFrame], new: Iterator[pl.DataFrame],
                   totals: list | None) -> Iterator[pl.DataFrame]:
    """Merge two streams sorted by (symbol, time); on equal keys the ``new`` row wins. ``totals``
    (if given) collects the :class:`WriteResult` of each window."""
    empty = pl.DataFrame(schema=BAR_SCHEMA)
    ob, nb = next(old, empty), next(new, empty)
    while ob.height or nb.height:  # an empty buffer means that stream is exhausted
        if not ob.height:
            part_o, part_n, nb = empty, nb, next(new, empty)
        elif not nb.height:
            part_o, part_n, ob = ob, empty, next(old, empty)
        else:
            lo, ln = ob.row(-1, named=True), nb.row(-1, named=True)
            cut = min((lo["symbol"], lo["time"]), (ln["symbol"], ln["time"]))
            m_o, m_n = ob.select(_le(cut)).to_series(), nb.select(_le(cut)).to_series()
            part_o, part_n = ob.filter(m_o), nb.filter(m_n)
            ob, nb = ob.filter(~m_o), nb.filter(~m_n)
            if not ob.height:
                ob = next(old, empty)
            if not nb.height:
                nb = next(new, empty)
        merged, res = merge_upsert(part_o, part_n, list(KEY))
        if totals is not None:
            totals.append(res)
        if merged.height:
            yield merged.sort("symbol", "time") if part_o.height and part_n.height else merged


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
