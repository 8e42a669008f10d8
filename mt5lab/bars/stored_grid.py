"""One grid per stored series: new bars on another server clock's grid must not join stored ones.

Bars of timeframes over one hour sit on the grid of the clock they were read with (an H4 or D1 bar
opens at the server's midnight, see :mod:`mt5lab.bars.clock`). Re-ingesting a file with another
``server_tz`` would not overwrite the stored bars but add a second, shifted copy of the series
(D1 bars at 22:00 and at 05:00 UTC, side by side), which every feature would then mix. Before
writing, :func:`check_stored_grid` reads the stored bars around the new ones and refuses, with one
line, when they are not on the new bars' grid.
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from mt5lab.bars.clock import on_grid
from mt5lab.catalog import TIMEFRAMES
from mt5lab.errors import BarValidationError

_MARGIN = timedelta(days=21)  # stored bars this far around the new ones are compared


def check_stored_grid(store, timeframe: str, ranges: pl.DataFrame, server_tz: str, source: str) -> None:
    """Refuse new bars (``ranges``: symbol, lo, hi of their opens) whose stored neighbours are on
    another grid. Only timeframes over one hour: below that, every whole-hour clock shares the grid.
    ``store``: an :class:`mt5lab.storage.OfflineStore`. Raises BarValidationError (no row)."""
    if TIMEFRAMES[timeframe] <= timedelta(hours=1) or ranges.is_empty():
        return
    for symbol, lo, hi in ranges.select("symbol", "lo", "hi").iter_rows():
        stored = store.read_bars(timeframe, [symbol], start=lo - _MARGIN, end=hi + _MARGIN)
        if stored.is_empty():
            continue
        bad = stored.filter(~on_grid(stored["time"], timeframe, server_tz))
        if bad.height:
            t = bad["time"][0]
            raise BarValidationError(
                source, None, "stored bars on another grid",
                f"stored {symbol} {timeframe} bars open at {t:%Y-%m-%d %H:%M} UTC, not on the {server_tz} "
                f"grid of these bars: they were read with another server_tz; writing would keep two "
                f"shifted copies of the series (read with the stored clock, or remove the stored bars)")
