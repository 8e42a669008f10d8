"""The offline-store interface: bars and features in, point-in-time reads out.

Both profiles implement it (:mod:`mt5lab.storage.local`, :mod:`mt5lab.storage.postgres`). Writes are
upserts keyed on ``(symbol, timeframe, time)`` and all or nothing: a failed write leaves the store
exactly as it was. Feast never writes here (its Postgres store cannot), mt5lab does.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from mt5lab.catalog import BAR_COLUMNS, BAR_SCHEMA, FEATURES, KEY

FEATURE_COLUMNS: tuple[str, ...] = ("symbol", "time", "event_timestamp", "created_timestamp",
                                    *(f.name for f in FEATURES))


def feature_schema() -> dict[str, pl.DataType]:
    schema: dict[str, pl.DataType] = {
        "symbol": pl.String(), "time": pl.Datetime("us", "UTC"),
        "event_timestamp": pl.Datetime("us", "UTC"), "created_timestamp": pl.Datetime("us", "UTC"),
    }
    schema |= {f.name: (pl.Float64() if f.dtype == "Float64" else pl.Int64()) for f in FEATURES}
    return schema


def now_utc() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class WriteResult:
    inserted: int
    updated: int
    unchanged: int

    def __add__(self, other: WriteResult) -> WriteResult:
        """Counts of two writes together, so ``sum(results, WriteResult(0, 0, 0))`` totals a stream."""
        return WriteResult(self.inserted + other.inserted, self.updated + other.updated,
                           self.unchanged + other.unchanged)

    @property
    def changed(self) -> int:
        return self.inserted + self.updated


class OfflineStore(abc.ABC):
    """Where bars and computed features live. Symbols are data, never identifiers or paths."""

    profile: str

    @abc.abstractmethod
    def lock(self) -> AbstractContextManager:
        """An exclusive writer lock across processes (build, ingest, update, apply, materialize)."""

    @abc.abstractmethod
    def write_bars(self, bars: pl.DataFrame) -> WriteResult:
        """Upsert canonical bars. All or nothing."""

    def write_bar_batches(self, timeframe: str, batches: Iterator[pl.DataFrame],
                          batch_rows: int = 100_000) -> WriteResult:
        """Upsert a stream of canonical bars of one ``timeframe``, sorted by (symbol, time) with unique
        keys, in one all-or-nothing write; the caller holds :meth:`lock`. Stores override this to keep
        memory near a couple of batches (streamed ingest); this default collects the stream."""
        frames = list(batches)
        return self.write_bars(pl.concat(frames)) if frames else WriteResult(0, 0, 0)

    @abc.abstractmethod
    def read_bars(self, timeframe: str, symbols: list[str] | None = None,
                  start: datetime | None = None, end: datetime | None = None) -> pl.DataFrame:
        """Bars with ``start <= time < end``, sorted by symbol then time."""

    @abc.abstractmethod
    def write_features(self, timeframe: str, features: pl.DataFrame) -> WriteResult:
        """Upsert feature rows (``FEATURE_COLUMNS``). Rows whose values are unchanged keep their
        ``created_timestamp``, so rebuilding the same bars changes nothing. All or nothing."""

    @abc.abstractmethod
    def read_features(self, timeframe: str, symbols: list[str] | None = None,
                      start: datetime | None = None, end: datetime | None = None,
                      columns: list[str] | None = None) -> pl.DataFrame:
        """Feature rows with ``start <= event_timestamp <= end``, sorted by symbol then time."""

    @abc.abstractmethod
    def latest_features(self, timeframe: str, symbols: list[str] | None = None) -> pl.DataFrame:
        """The newest feature row per symbol (by ``event_timestamp``)."""

    def write_token(self, timeframe: str) -> object | None:
        """A value that changes whenever bars or features of ``timeframe`` change through this API,
        by any process (a write that changes nothing may leave it); None when the store cannot tell. A long-running writer holding the lock
        compares it with the token it saw after its own last write to know that nobody else wrote in
        between (:class:`mt5lab.features.incremental.Tails`). Writes that bypass mt5lab (hand-made
        SQL, files copied in) are not seen: restart such a writer after one."""
        return None

    @abc.abstractmethod
    def timeframes(self) -> list[str]:
        """Timeframes that hold bars."""

    @abc.abstractmethod
    def counts(self) -> dict[str, int]:
        """Row counts per table, for reports and the all-or-nothing tests."""

    @abc.abstractmethod
    def feast_source(self, timeframe: str):
        """The Feast batch source over this store's feature table of ``timeframe``."""


def merge_upsert(old: pl.DataFrame, new: pl.DataFrame, key: list[str],
                 keep_column: str | None = None) -> tuple[pl.DataFrame, WriteResult]:
    """Upsert ``new`` (unique keys) into ``old`` on ``key``.

    A row of ``new`` equal to its stored row (null-aware, ignoring ``keep_column``) is left as
    stored, so it keeps its ``keep_column`` (``created_timestamp``): re-running changes nothing.
    """
    if old.height == 0:
        return new, WriteResult(new.height, 0, 0)
    value_cols = [c for c in new.columns if c not in key and c != keep_column]
    stored = old.select(key + value_cols).with_columns(pl.lit(True).alias("__hit"))
    j = new.join(stored, on=key, how="left", suffix="__old")
    exists = j["__hit"].fill_null(False)
    same = exists.clone()
    for c in value_cols:
        a, b = j[c], j[f"{c}__old"]
        same = same & ((a == b).fill_null(False) | (a.is_null() & b.is_null()))
    changed = new.filter(~same)
    inserted = int((~exists).sum())
    result = WriteResult(inserted, changed.height - inserted, new.height - changed.height)
    if changed.height == 0:
        return old, result
    kept = old.join(changed.select(key), on=key, how="anti")
    return pl.concat([kept, changed.select(old.columns)], how="vertical"), result


def parquet_batches(path: Path, batch_rows: int) -> Iterator[pl.DataFrame]:
    """A Parquet file of canonical bars, read in batches of at most ``batch_rows`` rows."""
    pf = pq.ParquetFile(path)
    for b in pf.iter_batches(batch_size=batch_rows, columns=list(BAR_COLUMNS)):
        if b.num_rows:
            yield pl.from_arrow(b).cast(BAR_SCHEMA)


def _le(cut: tuple) -> pl.Expr:
    sym, t = pl.col("symbol"), pl.col("time")
    return (sym < cut[0]) | ((sym == cut[0]) & (t <= cut[1]))


def merge_sorted(old: Iterator[pl.DataFrame], new: Iterator[pl.DataFrame],
                 totals: list | None = None) -> Iterator[pl.DataFrame]:
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
