"""Incremental update, the hot path's write: new bars in, validated, their features computed from the
last W stored bars, and bars, features and each symbol's newest online row written in one step
(under the store's writer lock).

1. Validate the new bars as ingest does, and refuse a bar that has not closed yet
   (``time + timeframe > now``): its features would leak the future into the online store.
2. Compute the feature rows of every new or revised bar from the stored history
   (:func:`mt5lab.features.incremental.incremental_rows`: ``t*``, window, carried obv/ad). A
   long-running writer passes its warm state (``tails``): a bar appended after a symbol's tail is
   then computed from memory, with no history read.
3. Write bars and feature rows offline (upserts; unchanged rows keep their ``created_timestamp``)
   and each symbol's newest row online. On Redis the online row goes first, as in Feast's own
   ``FeatureStore.push`` with ``PushMode.ONLINE_AND_OFFLINE``, so a closed bar reaches ``serve``
   and ``predict`` without waiting for the offline transaction; what those keys held is read in the
   same round trip, and put back if the offline write then fails: the online row stays where it was
   and ``mt5lab check freshness`` shows the symbol stale, as before. Other online stores (SQLite)
   are written after the offline store.

Revision policy: **recompute from there.** A bar older than the newest stored one (late,
out of order) or different from the stored bar at its time (a broker correction) is accepted;
every row from it to the end is recomputed (``obv``/``ad`` are cumulative, so the whole tail moves)
and the newest online row is rewritten. Re-sending identical bars changes nothing.

Look-ahead: a row's features use its bar and earlier bars only; forming bars are refused (1.).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import polars as pl

from mt5lab.bars.calendars import calendar_for
from mt5lab.bars.folds import second_occurrences
from mt5lab.bars.schema import canonical, grid_tz
from mt5lab.bars.stored_grid import check_stored_grid
from mt5lab.bars.validate import validate_bars
from mt5lab.catalog import TIMEFRAMES
from mt5lab.config import resolve
from mt5lab.errors import BarValidationError
from mt5lab.features.incremental import Tails, incremental_rows
from mt5lab.online.reader import reader
from mt5lab.storage import WriteResult, open_store

log = logging.getLogger(__name__)


@dataclass
class UpdateResult:
    timeframe: str
    rows: int
    bars: WriteResult
    features: WriteResult
    recomputed_from: dict[str, datetime] = field(default_factory=dict)  # per changed symbol: t*
    online_symbols: int = 0
    report: object = None  # mt5lab.bars.validate.ValidationReport
    online_at: float | None = None  # Unix time (s) the online write finished; None: no online write

    def summary(self) -> str:
        return (f"{self.timeframe}: {self.rows} bars ({self.bars.inserted} new, {self.bars.updated} "
                f"revised, {self.bars.unchanged} unchanged); {self.features.changed} feature rows "
                f"written for {len(self.recomputed_from)} symbols; {self.online_symbols} online rows")


def _check_closed(frame: pl.DataFrame, tf: str, now: datetime, source: str) -> None:
    closes = frame["time"] + TIMEFRAMES[tf]
    bad = (closes > now).arg_true()
    if bad.len():
        i = int(bad[0])
        raise BarValidationError(
            source, i + 1, "bar not closed yet",
            f"symbol={frame['symbol'][i]!r} time={frame['time'][i]} closes at {closes[i]}, after now "
            f"({now:%Y-%m-%d %H:%M:%S} UTC); drop the forming bar (MT5 copy_rates position 0)")


def update(new_bars, *, profile=None, timeframe: str | None = None, source: str = "<frame>",
           calendar: str | None = None, now: datetime | None = None, online: bool = True,
           store=None, server_tz: str | None = None, tails: Tails | None = None) -> UpdateResult:
    """Ingest ``new_bars`` incrementally: validate, compute their features from the stored history,
    write bars and features offline and each symbol's newest row online, under one lock.

    Args:
        new_bars: polars or pandas frame of canonical bars (one timeframe). ``time`` tz-aware, or
            naive / integer epoch times on the broker's server clock (MT5's ``copy_rates_*``
            frames: int seconds), converted with ``server_tz``.
        profile: profile name or :class:`~mt5lab.config.Profile` (default: ``MT5LAB_PROFILE``).
        timeframe: the bars' timeframe when the frame has no ``timeframe`` column.
        source: name used in validation errors.
        calendar: market calendar for the gap report (default: the samples' calendar, else fx).
        now: refuse bars closing after this instant (default: the wall clock).
        online: also write the newest rows to the online store (needs ``mt5lab apply`` once).
        store: an open offline store (default: the profile's).
        server_tz: the broker's server clock (``"NY+7"``, an IANA zone, ``"Etc/GMT-2"``; default
            ``MT5LAB_SERVER_TZ``): converts naive/int times and sets the bar grid (see
            :mod:`mt5lab.bars.clock`). Required for naive/int times.
        tails: warm state of a long-running writer (:class:`mt5lab.features.incremental.Tails`,
            one per timeframe): new bars after a symbol's tail are computed without reading its
            history back. Moved forward when the writes succeed, forgotten for the frame's symbols
            when anything fails.
    """
    prof = resolve(profile)
    store = store or open_store(prof)
    grid = grid_tz(new_bars, server_tz)
    frame = canonical(new_bars, timeframe, server_tz=server_tz, source=source)
    tfs = frame["timeframe"].unique().to_list()
    tf = tfs[0] if len(tfs) == 1 else (timeframe or "D1").upper()
    if len(tfs) == 1:  # a DST fold's second hour sent on its own (mt5lab.bars.folds)
        frame = second_occurrences(frame, tf, grid, store)
    cal = calendar or calendar_for(frame["symbol"].unique().to_list())
    report = validate_bars(frame, source=source, calendar=cal, server_tz=grid)  # and mixed timeframes
    if frame.height == 0:
        return UpdateResult(tf, 0, WriteResult(0, 0, 0), WriteResult(0, 0, 0), report=report)
    ranges = frame.group_by("symbol").agg(lo=pl.col("time").min(), hi=pl.col("time").max())
    check_stored_grid(store, tf, ranges, report.server_tz, source)
    if now is not None and (now.tzinfo is None or now.utcoffset() is None):
        raise ValueError(f"now must be timezone-aware, got naive {now!r}")
    _check_closed(frame, tf, now or datetime.now(UTC), source)
    tables = reader(prof, tf).tables if online else None  # fails before any write if not applied
    symbols = frame["symbol"].unique().to_list()
    try:
        with store.lock():
            rows, starts = incremental_rows(store, tf, frame, tails)
            n_online, online_at, undo = 0, None, None
            first = tables is not None and tables.can_swap
            if first:  # Redis: online first, undone if the offline write fails
                n_online, undo = _write_online(store, tables, tf, symbols, rows, starts, swap=True)
                online_at = time.time()
            try:
                bars_res = store.write_bars(frame)
                feat_res = store.write_features(tf, rows) if rows.height else WriteResult(0, 0, 0)
            except BaseException:
                _undo(undo, source)
                raise
            if tables is not None and not first:
                n_online = _write_online(store, tables, tf, symbols, rows, starts)
                online_at = time.time()
            if tails is not None:
                tails.commit(store.write_token(tf))
    except BaseException:
        if tails is not None:
            tails.forget(symbols)
        raise
    return UpdateResult(tf, frame.height, bars_res, feat_res, starts, n_online, report, online_at)


def _undo(undo, source: str) -> None:
    """Put the online rows back after a failed offline write (best effort: if the online store is
    unreachable too, they stay ahead until the same bars are sent again)."""
    if undo is None:
        return
    try:
        undo()
    except Exception as exc:
        log.warning("%s: the offline write failed and the online rows written before it could not be "
                    "restored (%s: %s); they stay ahead of the offline store until these bars are sent "
                    "again", source, type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")


def _write_online(store, tables, tf: str, symbols: list[str], rows: pl.DataFrame, starts: dict,
                  swap: bool = False):
    """Each symbol's newest row to the online store: the newest new row, else the stored one (a
    re-sent bar rewrites the online row, which repairs a run that stopped before this write).
    Returns the rows written, or with ``swap`` ``(rows written, undo)``
    (:meth:`mt5lab.online.tables.OnlineTables.swap_latest`)."""
    latest = None
    if rows.height:
        last = rows.select(pl.col("time").max().over("symbol") == pl.col("time")).to_series()
        latest = rows.filter(last)
    rest = [s for s in symbols if s not in starts]
    parts = [p for p in (latest, store.latest_features(tf, rest) if rest else None) if p is not None and p.height]
    if not parts:
        return (0, None) if swap else 0
    cols = ["symbol", "event_timestamp", "created_timestamp", *tables.feature_names]
    frame = pl.concat([p.select(cols) for p in parts])
    return tables.swap_latest(frame) if swap else tables.write_latest(frame)
