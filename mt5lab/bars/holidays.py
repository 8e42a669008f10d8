"""Holidays: the whole trading days each market calendar is closed, besides its weekends.

Dates here are *trading dates* of the calendar (the exchange's local date; on ``fx``, the date of the
"New York + 7 h" server clock, whose Monday..Friday are the FX trading week). A holiday is a
Monday..Friday on which the market does not trade; weekends are the calendar's own business
(:mod:`mt5lab.bars.calendars`).

``equity``, ``uk_index``, ``eu_index``
    The **regular** holidays of the exchange named in :data:`mt5lab.catalog.CALENDAR_EXCHANGES`
    (NYSE ``XNYS``, London ``XLON``, Xetra ``XETR``), from the ``exchange_calendars`` library: the
    recurring rules with their observance (Christmas on a Saturday is observed on the Friday, and
    so on). Ad-hoc closures (9/11 in 2001, Hurricane Sandy in 2012, state funerals, jubilees) are
    *not* included: they are not known in advance and are not normal closures, so they still show
    as gaps for a human to judge.
``fx``
    Closed on 25 December and 1 January (whole server days), as in most MT5 brokers' published
    holiday schedules; the interbank market has no liquidity on those days. The real EURUSD sample
    (2017-2018) has no bars on exactly those weekdays. No other weekday is closed (FX trades on Good
    Friday).
``24x7``
    No holidays, no weekends.

``exchange_calendars`` is imported on first use and each exchange is built once per process
(``functools.cache``): importing and building it costs about half a second.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import cache, lru_cache

import polars as pl

from mt5lab.catalog import CALENDAR_EXCHANGES, check_calendar

FX_HOLIDAYS: tuple[tuple[int, int], ...] = ((12, 25), (1, 1))
"""(month, day) of the server days FX is closed when they fall on a weekday."""
_DAY = timedelta(days=1)


@cache
def _exchange(code: str):
    """The ``exchange_calendars`` calendar ``code`` (imported and built lazily, once)."""
    import exchange_calendars  # slow import: only when a holiday is first asked for

    return exchange_calendars.get_calendar(code)


@lru_cache(maxsize=256)
def _decade(calendar: str, decade: int) -> frozenset[date]:
    """The weekday holidays of ``calendar`` in the years ``10 * decade .. 10 * decade + 9``."""
    years = range(10 * decade, 10 * decade + 10)
    if calendar == "24x7":
        return frozenset()
    if calendar == "fx":
        days = (date(y, m, d) for y in years for m, d in FX_HOLIDAYS)
    else:
        import pandas as pd

        rules = _exchange(CALENDAR_EXCHANGES[calendar]).regular_holidays
        found = rules.holidays(pd.Timestamp(years[0], 1, 1), pd.Timestamp(years[-1], 12, 31))
        days = (t.date() for t in found)
    return frozenset(d for d in days if d.weekday() < 5)


def holidays(calendar: str, start: date, end: date) -> frozenset[date]:
    """Weekdays in ``[start, end]`` on which ``calendar`` does not trade (regular holidays only).

    ``start`` and ``end`` are trading dates (datetimes are refused: which date an instant belongs to
    depends on the calendar's clock, which the caller converts). Raises ``ConfigError`` for an
    unknown calendar.
    """
    cal = check_calendar(calendar)
    start, end = _date(start, "start"), _date(end, "end")
    out: set[date] = set()
    for decade in range(start.year // 10, end.year // 10 + 1):
        out |= {d for d in _decade(cal, decade) if start <= d <= end}
    return frozenset(out)


def is_holiday(calendar: str, day: date) -> bool:
    """Whether the trading date ``day`` is a holiday (a weekday without trading) of ``calendar``."""
    day = _date(day, "day")
    return day in _decade(check_calendar(calendar), day.year // 10)


def is_trading_day(calendar: str, day: date) -> bool:
    """Whether ``calendar`` trades on the trading date ``day`` (every day on ``24x7``)."""
    day = _date(day, "day")
    if check_calendar(calendar) == "24x7":
        return True
    return day.weekday() < 5 and not is_holiday(calendar, day)


def trading_days(calendar: str, start: date, end: date) -> list[date]:
    """The trading dates of ``calendar`` in ``[start, end]``, ascending."""
    start, end = _date(start, "start"), _date(end, "end")
    off = holidays(calendar, start, end)
    every = calendar == "24x7"
    return [d for d in _days(start, end) if every or (d.weekday() < 5 and d not in off)]


def holiday_expr(dates: pl.Expr, calendar: str, start: date, end: date) -> pl.Expr:
    """Vectorised :func:`is_holiday`: ``dates`` (a ``pl.Date`` expression of trading dates) is one of
    the holidays of ``calendar`` in ``[start, end]`` (pass the span of the data; dates outside it are
    never holidays)."""
    days = pl.Series("holidays", sorted(holidays(calendar, start, end)), dtype=pl.Date)
    return dates.is_in(days.implode())


def longest_closure(calendar: str, start_year: int, end_year: int) -> timedelta:
    """The most consecutive whole days without a trading day (weekends plus regular holidays) in
    the years ``start_year..end_year``: the figure :data:`mt5lab.catalog.CALENDAR_CLOSURES` states.

    A closure that runs over the edge of the range is counted whole (the scan reaches a week beyond).
    """
    cal = check_calendar(calendar)
    if cal == "24x7":
        return timedelta(0)
    first, last = date(start_year, 1, 1), date(end_year, 12, 31)
    trading = trading_days(cal, first - 7 * _DAY, last + 7 * _DAY)
    best = timedelta(0)
    for a, b in zip(trading, trading[1:], strict=False):
        if b - a - _DAY > best and a < last and b > first:
            best = b - a - _DAY
    return best


def _days(start: date, end: date):
    d = start
    while d <= end:
        yield d
        d += _DAY


def _date(d: date, name: str) -> date:
    if not isinstance(d, date) or hasattr(d, "hour"):
        raise TypeError(f"{name} must be a datetime.date (a trading date), got {d!r}")
    return d
