"""The x axis of bar charts: calendar time, or trading time (one slot per bar, no weekend holes).

On a calendar-time axis an FX H1 chart is one third empty (weekends) and 5,000 bars are unreadable;
on a **trading-time** axis bar ``i`` sits at ``x = i`` and the tick labels are the bars' open dates,
so closures take no room. ``axis="auto"`` picks trading time for intraday timeframes and calendar time
for D1 and W1 (where a weekend is a small step). Either way, **gaps** (bars the market calendar
expected but the series lacks, from :func:`mt5lab.bars.calendars.find_gaps`) are drawn by
:meth:`XAxis.mark_gaps` the same way in every figure (notebooks 01 and 03): a red band over the
missing time on a calendar axis, a red band between the two bars around the gap on a trading-time
axis. Closures are never gaps: a calendar axis breaks lines across long ones (:func:`with_breaks`).
"""

from __future__ import annotations

from datetime import timedelta

import matplotlib.dates as mdates
import numpy as np
import polars as pl
from matplotlib.ticker import FuncFormatter, MaxNLocator

from mt5lab.catalog import bar_duration

AXES = ("auto", "bars", "time")
GAP_STYLE = {"color": "tab:red", "alpha": 0.25, "lw": 0}
GAP_LABEL = "gap (missing bars)"


def with_breaks(df: pl.DataFrame, timeframe: str) -> pl.DataFrame:
    """``df`` plus an all-null row inside every market closure longer than ``max(4 bars, 12 h)``
    (an FX weekend on H1; not an equity weekend on D1), so lines and bands break there instead of
    drawing a straight segment across hours with no trading."""
    step = bar_duration(timeframe)
    limit = max(4 * step, timedelta(hours=12))
    d = df.sort("time")
    cut = d.filter(d["time"].diff() > limit)
    if cut.height == 0:
        return d
    fill = pl.DataFrame({"time": cut["time"] - step}).cast({"time": d.schema["time"]})
    return pl.concat([d, fill], how="diagonal").sort("time")


def trading_time(timeframe: str, axis: str = "auto") -> bool:
    """Whether ``axis`` means a trading-time axis for ``timeframe`` (``auto``: intraday only)."""
    if axis not in AXES:
        raise ValueError(f"axis must be one of {', '.join(AXES)}, got {axis!r}")
    return axis == "bars" or (axis == "auto" and bar_duration(timeframe) < timedelta(days=1))


class XAxis:
    """The x coordinates of one frame's bars (sorted by ``time``) and how to label them."""

    def __init__(self, df: pl.DataFrame, timeframe: str, axis: str = "auto"):
        self.timeframe = timeframe
        self.bars = trading_time(timeframe, axis)
        self.frame = df.sort("time") if self.bars else with_breaks(df, timeframe)
        self.times = self.frame["time"].to_numpy()

    @property
    def x(self) -> np.ndarray:
        """Bar positions ``0..n-1`` (trading time) or bar open times (calendar time)."""
        return np.arange(len(self.times), dtype=float) if self.bars else self.times

    def at(self, times: pl.Series) -> np.ndarray:
        """x of bars opening at ``times`` (which must be bars of the frame)."""
        if not self.bars:
            return times.to_numpy()
        return self.frame["time"].search_sorted(times).to_numpy().astype(float)

    @property
    def width(self) -> float:
        """A bar body's width in x units (70% of a bar)."""
        return 0.7 if self.bars else bar_duration(self.timeframe).total_seconds() / 86400 * 0.7

    @property
    def label(self) -> str:
        return ("bar open time (UTC), trading time: one slot per bar, closures take no room"
                if self.bars else "bar open time (UTC)")

    def format(self, ax) -> None:
        """Date ticks: at bar positions (trading time) or on the calendar."""
        if self.bars:
            times, daily = self.times, bar_duration(self.timeframe) >= timedelta(days=1)

            def label(x, _pos):
                i = int(round(x))
                if not 0 <= i < len(times):
                    return ""
                s = np.datetime_as_string(times[i], unit="m")
                return s[:10] if daily else f"{s[:10]}\n{s[11:16]}"

            ax.xaxis.set_major_locator(MaxNLocator(nbins=8, integer=True))
            ax.xaxis.set_major_formatter(FuncFormatter(label))
            ax.set_xlim(-1, len(times))
        else:
            loc = mdates.AutoDateLocator()
            ax.xaxis.set_major_locator(loc)
            ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
        ax.grid(alpha=0.3)

    def mark_gaps(self, ax, gaps: pl.DataFrame | None, label: bool = True) -> int:
        """Red bands over ``gaps`` (``gap_start``, ``gap_end`` bar opens, UTC); returns how many."""
        if gaps is None or gaps.height == 0:
            return 0
        step = bar_duration(self.timeframe)
        times = self.frame["time"]
        for i, g in enumerate(gaps.iter_rows(named=True)):
            name = GAP_LABEL if label and i == 0 else None
            if self.bars:
                after = int(times.search_sorted(g["gap_end"] + step))  # first bar after the gap
                ax.axvspan(after - 1, after, label=name, **GAP_STYLE)
            else:
                ax.axvspan(g["gap_start"], g["gap_end"] + step, label=name, **GAP_STYLE)
        return gaps.height

