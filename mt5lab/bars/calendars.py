"""Market calendars: when a complete bar series has bars, where a series has gaps, what is stale.

Five calendars (:data:`mt5lab.catalog.CALENDARS`). Regular holidays come from
:mod:`mt5lab.bars.holidays` (the exchange's rules via ``exchange_calendars``; 25 December and 1 January
on fx), so they are neither expected bars nor gaps; ad-hoc closures still show as gaps, for a human
to judge:

``fx``
    Sunday 17:00 America/New_York to Friday 17:00 America/New_York, DST-aware (21:00 or 22:00 UTC).
    US clocks change on Sunday at 02:00, before the weekly open, so every trading week is exactly
    120 hours. Equivalently: the market is open when "New York + 7 h" (MT5's usual server clock) is
    on a Monday..Friday.
``equity`` (NYSE), ``uk_index`` (London), ``eu_index`` (Xetra)
    Monday..Friday trading days, whole server days (UTC days by default). Session hours differ by
    exchange and broker, so for intraday timeframes :func:`find_gaps` reports only trading days with
    no bar at all (``missing_bars`` counts the bar slots of those days).
``24x7``
    Always open (crypto).

Bar stamps follow the alignment rule of :mod:`mt5lab.bars.validate`, on the broker's server clock
``server_tz`` (default UTC): intraday bars open on multiples of their duration since a server
midnight; D1 bars at the server midnight of their trading date; W1 bars at the server midnight of the
week's first day: Sunday on ``fx`` (MT5's convention), Monday otherwise. Days and weekdays (D1
bars, whole-day equity gaps) are server days. Gap detection for W1 compares weeks, so either stamp
works. On ``fx``, D1 bars are expected Monday..Friday; a Sunday bar, if the broker emits one, is
allowed but not required.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import polars as pl

from mt5lab.bars.clock import every_instant, from_server, to_server
from mt5lab.bars.holidays import holiday_expr, holidays, is_trading_day
from mt5lab.bars.samples import SAMPLES
from mt5lab.catalog import CALENDAR_EXCHANGES, TIMEFRAMES, check_calendar, check_timeframe

NEW_YORK = ZoneInfo("America/New_York")
FX_SHIFT = timedelta(hours=7)
"""New York wall time + 7 h puts the FX weekly open (Sunday 17:00 NY) at Monday 00:00."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY, _WEEK = timedelta(days=1), timedelta(weeks=1)
GAP_SCHEMA = {"gap_start": pl.Datetime("us", "UTC"), "gap_end": pl.Datetime("us", "UTC"),
              "missing_bars": pl.Int64}


def _utc(t: datetime, name: str = "t") -> datetime:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {t!r}")
    return t.astimezone(UTC)


_SPAN = (date(1970, 1, 1), date(2099, 12, 31))  # holidays known to the vectorised checks


def _trading_day_expr(dates: pl.Expr, calendar: str) -> pl.Expr:
    """``dates`` (pl.Date trading dates) are Monday..Friday and no holiday of ``calendar``."""
    if calendar == "24x7":
        return pl.lit(True)
    return (dates.dt.weekday() <= 5) & ~holiday_expr(dates, calendar, *_SPAN)


def is_open(t: datetime, calendar: str) -> bool:
    """Whether the market of ``calendar`` is open at the instant ``t`` (timezone-aware): on fx, a
    trading day of the New York + 7 h clock; on the exchange calendars, a trading UTC day."""
    t = _utc(t)
    cal = check_calendar(calendar)
    if cal == "fx":
        return is_trading_day(cal, (t.astimezone(NEW_YORK).replace(tzinfo=None) + FX_SHIFT).date())
    return is_trading_day(cal, t.date())


def open_expr(expr: pl.Expr, calendar: str) -> pl.Expr:
    """Vectorised :func:`is_open` over a column of tz-aware datetimes."""
    cal = check_calendar(calendar)
    if cal == "fx":
        fx_clock = expr.dt.convert_time_zone(NEW_YORK.key).dt.replace_time_zone(None) + FX_SHIFT
        return _trading_day_expr(fx_clock.dt.date(), cal)
    return _trading_day_expr(expr.dt.convert_time_zone("UTC").dt.date(), cal)


def _ceil(t: datetime, step: timedelta, anchor: datetime = _EPOCH) -> datetime:
    return anchor - ((anchor - t) // step) * step


def _range(first: datetime, last: datetime, step: timedelta) -> pl.Series:
    if first > last:
        return pl.Series("time", [], pl.Datetime("us", "UTC"))
    s = pl.datetime_range(first, last, interval=step, time_unit="us", time_zone="UTC", eager=True)
    return s.alias("time")


def _week_anchor(calendar: str) -> datetime:
    """A midnight on the weekday W1 bars are stamped on (1970-01-04 is a Sunday)."""
    return datetime(1970, 1, 4 if calendar == "fx" else 5, tzinfo=UTC)


def _wall(t: datetime, server_tz: str) -> datetime:
    """An instant's server wall time, labelled UTC (the grid arithmetic below is zone-free)."""
    return to_server(pl.Series([t]), server_tz).dt.replace_time_zone("UTC")[0]


def expected_bar_opens(start: datetime, end: datetime, timeframe: str, calendar: str,
                       server_tz: str = "UTC") -> pl.Series:
    """Bar open times (UTC) a complete series of ``timeframe`` has in ``[start, end]``.

    The grid is the server clock's (see :mod:`mt5lab.bars.clock`): fx intraday: every open inside
    trading hours; D1 (fx, equity): Monday..Friday server midnights; W1: Sundays on fx, Mondays
    otherwise; equity intraday: every slot of Monday..Friday (no session hours, which is why
    :func:`find_gaps` judges intraday equity by whole days); 24x7: every slot. A server wall time
    that DST repeats gives two opens; one that DST skips, none.
    """
    start, end = _utc(start, "start"), _utc(end, "end")
    tf, cal = check_timeframe(timeframe), check_calendar(calendar)
    ws, we = _wall(start, server_tz), _wall(end, server_tz) + timedelta(hours=1)  # a fold's 2nd hour
    if tf == "W1":
        wall = _range(_ceil(ws, _WEEK, _week_anchor(cal)), we, _WEEK)
    else:
        step = TIMEFRAMES[tf]
        wall = _range(_ceil(ws, step), we, step)
        if cal != "24x7" and (tf == "D1" or cal in CALENDAR_EXCHANGES):
            wall = wall.to_frame().filter(_trading_day_expr(pl.col("time").dt.date(), cal)).to_series()
    opens = every_instant(wall.dt.replace_time_zone(None), server_tz).alias("time")
    opens = opens.filter(opens.is_between(start, end))
    if cal == "fx" and tf not in ("D1", "W1"):
        opens = opens.to_frame().filter(open_expr(pl.col("time"), cal)).to_series()
    return opens


def _jump_gaps(t: pl.Series, step: timedelta, keep: Callable[[pl.Expr], pl.Expr] | None,
               anchor: datetime = _EPOCH) -> pl.DataFrame:
    """Gaps between consecutive sorted bar opens ``t``: the expected opens strictly between them.

    Only pairs further apart than ``step`` are expanded, so a long complete series costs one diff.
    ``keep`` filters candidate opens (the calendar); consecutive missing bars are always one gap.
    """
    step_us, anchor_us = step // timedelta(microseconds=1), (anchor - _EPOCH) // timedelta(microseconds=1)
    jumps = (
        pl.DataFrame({"a": t[:-1], "b": t[1:]})
        .filter(pl.col("b") - pl.col("a") > step)
        .with_row_index("jump")
    )
    if jumps.is_empty():
        return pl.DataFrame(schema=GAP_SCHEMA)
    k = (pl.col("a").dt.epoch("us") - anchor_us) // step_us + 1
    first = pl.from_epoch(k * step_us + anchor_us, time_unit="us")
    last = pl.col("b") - timedelta(microseconds=1)
    opens = jumps.select(
        "jump",
        t=pl.datetime_ranges(first.dt.replace_time_zone("UTC"), last, interval=step, time_unit="us",
                             time_zone="UTC"),
    ).explode("t")
    if keep is not None:
        opens = opens.filter(keep(pl.col("t")))
    return (
        opens.drop_nulls("t")
        .group_by("jump")
        .agg(gap_start=pl.col("t").min(), gap_end=pl.col("t").max(), missing_bars=pl.len())
        .sort("gap_start")
        .select(list(GAP_SCHEMA))
        .cast(GAP_SCHEMA)
    )


def _day_filter(calendar: str) -> Callable[[pl.Expr], pl.Expr]:
    return lambda e: _trading_day_expr(e.dt.date(), calendar)


def find_gaps(times: pl.Series, timeframe: str, calendar: str, server_tz: str = "UTC") -> pl.DataFrame:
    """Gaps in a series of bar open times: one row per run of missing expected bars.

    ``times`` are tz-aware, aligned bar opens on the grid of ``server_tz`` (see
    :mod:`mt5lab.bars.validate`). Columns: ``gap_start`` (first missing bar open, UTC), ``gap_end``
    (last missing bar open, UTC), ``missing_bars``. A closure of the calendar (an FX weekend) is not a
    gap; a missing weekday is. Missing bars on both sides of a closure, with no bar in between, are
    one gap. The arithmetic runs on server wall times, so an H4 or D1 grid anchored at the server's
    midnight has no false gaps; a wall time skipped by DST is not expected.
    """
    tf, cal = check_timeframe(timeframe), check_calendar(calendar)
    utc = times.drop_nulls().dt.convert_time_zone("UTC").dt.cast_time_unit("us")
    t = to_server(utc, server_tz).dt.replace_time_zone("UTC").unique().sort()  # wall, labelled UTC
    if t.len() < 2:
        return pl.DataFrame(schema=GAP_SCHEMA)

    def real(e: pl.Expr) -> pl.Expr:  # a wall time (labelled UTC) to its instant; null if skipped
        return from_server(e.dt.replace_time_zone(None), server_tz)

    def exists(e: pl.Expr) -> pl.Expr:
        return real(e).is_not_null()

    if tf == "W1":  # compare weeks (Monday keys), report in the stamp convention of the data
        keys = (t + _DAY).dt.truncate("1w").unique().sort()
        shift = t[0] - keys[0]
        gaps = _jump_gaps(keys, _WEEK, None, _week_anchor("equity")).with_columns(
            pl.col("gap_start", "gap_end") + shift)
    else:
        step = TIMEFRAMES[tf]
        daily_filter = None if cal == "24x7" else _day_filter(cal)
        if step == _DAY:
            gaps = _jump_gaps(t, _DAY, daily_filter)
        elif cal in CALENDAR_EXCHANGES:  # intraday exchange calendars: whole missing trading days only
            days = t.dt.truncate("1d").unique().sort()
            gaps = _jump_gaps(days, _DAY, daily_filter).with_columns(
                pl.col("gap_end") + (_DAY - step), pl.col("missing_bars") * (_DAY // step))
        elif cal == "24x7":
            gaps = _jump_gaps(t, step, exists)
        else:
            gaps = _jump_gaps(t, step, lambda e: exists(e) & open_expr(real(e), cal).fill_null(False))
    if server_tz == "UTC":
        return gaps
    return gaps.with_columns(real(pl.col("gap_start")).alias("gap_start"),
                             from_server(pl.col("gap_end").dt.replace_time_zone(None), server_tz,
                                         "latest").alias("gap_end")).cast(GAP_SCHEMA)


def _closures(a: datetime, b: datetime, calendar: str) -> Iterator[tuple[datetime, datetime]]:
    """Closed intervals (UTC) of ``calendar`` that may intersect ``[a, b)``."""
    if calendar == "24x7":
        return
    zone = NEW_YORK if calendar == "fx" else UTC
    day: date = a.astimezone(zone).date() - timedelta(days=7)
    stop: date = b.astimezone(zone).date() + timedelta(days=1)
    off = holidays(calendar, day, stop + _DAY)
    while day <= stop:
        if calendar == "fx" and day.weekday() == 4:  # Friday 17:00 NY .. Sunday 17:00 NY
            yield (datetime.combine(day, time(17), NEW_YORK).astimezone(UTC),
                   datetime.combine(day + 2 * _DAY, time(17), NEW_YORK).astimezone(UTC))
        elif calendar != "fx" and day.weekday() == 5:  # Saturday 00:00 .. Monday 00:00 UTC
            yield datetime.combine(day, time(0), UTC), datetime.combine(day + 2 * _DAY, time(0), UTC)
        if calendar == "fx" and day + _DAY in off:  # the server day: 17:00 NY the day before
            yield (datetime.combine(day, time(17), NEW_YORK).astimezone(UTC),
                   datetime.combine(day + _DAY, time(17), NEW_YORK).astimezone(UTC))
        elif calendar != "fx" and day in off:
            yield datetime.combine(day, time(0), UTC), datetime.combine(day + _DAY, time(0), UTC)
        day += _DAY


def market_closed_between(a: datetime, b: datetime, calendar: str) -> timedelta:
    """How much of ``[a, b)`` the market of ``calendar`` was closed (zero if ``b <= a``)."""
    a, b = _utc(a, "a"), _utc(b, "b")
    cal = check_calendar(calendar)
    closed = timedelta(0)
    for lo, hi in _closures(a, b, cal):
        closed += max(timedelta(0), min(hi, b) - max(lo, a))
    return closed


def expected_latest_close(now: datetime, timeframe: str, calendar: str, server_tz: str = "UTC") -> datetime:
    """Close time (UTC) of the latest bar of ``timeframe`` that should exist by ``now``.

    A feed whose last bar closes at or after this is not stale: an FX H1 series last updated
    Friday 21:00 UTC (summer) checked on Saturday expects exactly that Friday close.
    """
    now = _utc(now, "now")
    step = TIMEFRAMES[check_timeframe(timeframe)]
    opens = expected_bar_opens(now - step - 3 * _WEEK, now - step, timeframe, calendar, server_tz)
    if opens.is_empty():  # pragma: no cover - every calendar has bars within three weeks
        raise ValueError(f"no {timeframe} bar expected on {calendar} in the three weeks before {now}")
    return opens[-1] + step


def symbol_calendar(symbol: str, default: str = "fx", calendars: dict | None = None) -> str:
    """The calendar of ``symbol``: ``calendars[symbol]`` if given, a bundled sample's own, else ``default``."""
    if calendars and symbol in calendars:
        return calendars[symbol]
    sample = SAMPLES.get(symbol)
    return sample.calendar if sample else default


def calendar_for(symbols: list[str], default: str = "fx") -> str:
    """One calendar for a set of symbols (validation takes one): theirs if they agree, else default."""
    cals = {symbol_calendar(s, default) for s in symbols}
    return cals.pop() if len(cals) == 1 else default
