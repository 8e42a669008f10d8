"""The offline-store interface: bars and features in, point-in-time reads out.

Both profiles implement it (:mod:`mt5lab.storage.local`, :mod:`mt5lab.storage.postgres`). Writes are
upserts keyed on ``(symbol, timeframe, time)`` and all or nothing: a failed write leaves the store
exactly as it was. Feast never writes here (its Postgres store cannot), mt5lab does.
"""

from __future__ import annotations

import abc
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl

from mt5lab.catalog import FEATURES

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
