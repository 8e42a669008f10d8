"""A wrong server clock must not pass silently: bars that traded while their market was closed.

Read with the wrong ``server_tz``, a week of FX bars shifts by the clock's offset, and the last
hours of Friday land in the weekend closure (Friday 17:00 to Sunday 17:00 New York). mt5lab itself
cannot know the broker's clock, but the market calendar can: a bar with real activity (high > low)
whose whole span lies inside a closure means the clock is wrong. (A bar that only straddles the
weekly open or close is normal: an H4 bar of a UTC server opens Sunday 20:00 and holds the 22:00
open.) Then :func:`check_clock` looks for the server clock that puts every active bar in market hours
(:data:`CANDIDATES`) and refuses the input with one line that names it. If no clock explains the
bars, it warns loudly instead (:class:`~mt5lab.errors.Mt5LabWarning`): a rule that is unsure does not
refuse data.

Scope: M1..D1 bars of the ``fx`` calendar (weekend closure, New York time) and of the exchange
calendars (Saturday in the exchange's own time zone; Sunday evening sessions of index CFDs are not a
closure). Frozen bars (high == low), which brokers emit while a market is shut, are not activity.
Holidays are not used: many brokers trade through them. Limits: a shift that keeps every bar
touching market hours is invisible to a calendar (an H4 series read 2 h off; a D1 series without
weekend bars), so the choice of ``server_tz`` stays the user's.

Unsure rule (warns, never refuses): US ``equity`` bars active wholly outside 04:00-20:00 New York,
the widest extended-hours session brokers offer (an equity bar at 03:00 local suggests a shifted
clock); the warning names a clock that puts every active bar inside it, if one does.
"""

from __future__ import annotations

import warnings
from datetime import timedelta
from zoneinfo import ZoneInfo

import polars as pl

from mt5lab.bars.clock import NY_CLOSE, from_server, to_server
from mt5lab.catalog import TIMEFRAMES
from mt5lab.errors import BarValidationError, Mt5LabWarning

DST_CLOCKS: tuple[str, ...] = ("America/New_York", "America/Chicago", "Europe/London", "Europe/Berlin",
                               "Europe/Athens", "Australia/Sydney")
"""Server clocks with DST that brokers run, besides NY+7."""
FIXED_CLOCKS: tuple[str, ...] = tuple(f"Etc/GMT{-k:+d}" if k else "UTC" for k in range(-12, 15))
CANDIDATES: tuple[str, ...] = (NY_CLOSE, *DST_CLOCKS, *FIXED_CLOCKS)
"""Server clocks tried when bars trade while the market is closed. Named: NY+7 when it fits, else the
first DST clock that fits (a clock that fits a winter-only file as a fixed offset usually has DST),
else the middle one of the fixed offsets that fit (a wide session admits several)."""
SESSION = {"equity": ("America/New_York", 4, 20)}
"""Widest normal session (zone, first hour, end hour) of a calendar's intraday bars: the unsure rule."""
EXCHANGE_ZONES = {"equity": "America/New_York", "uk_index": "Europe/London", "eu_index": "Europe/Berlin"}
"""Where an exchange calendar's Saturday is (only Saturday is certain to be closed for its CFDs)."""


def _local(t: pl.Expr, calendar: str) -> tuple[pl.Expr, int] | None:
    """(naive wall time whose weekday decides, first closed ISO weekday) of ``calendar``."""
    if calendar == "fx":  # Friday 17:00 .. Sunday 17:00 New York = Saturday/Sunday on New York + 7 h
        return t.dt.convert_time_zone("America/New_York").dt.replace_time_zone(None) + timedelta(hours=7), 6
    if calendar in EXCHANGE_ZONES:
        return t.dt.convert_time_zone(EXCHANGE_ZONES[calendar]).dt.replace_time_zone(None), 6
    return None


def closed_expr(t: pl.Expr, calendar: str) -> pl.Expr | None:
    """True where ``calendar``'s market is surely closed at instant ``t`` (None: never surely)."""
    local = _local(t, calendar)
    if local is None:
        return None
    wall, first = local
    return wall.dt.weekday() >= first if calendar == "fx" else wall.dt.weekday() == first


def _in_closure(t: pl.Expr, step: timedelta, calendar: str) -> pl.Expr:
    """A bar ``[t, t + step)`` lies wholly inside a closure: its open and its last instant are closed
    (bars are no longer than a closure, so nothing open lies between). One zone conversion."""
    wall, first = _local(t, calendar)
    end = wall + (step - timedelta(microseconds=1))
    if calendar == "fx":
        return (wall.dt.weekday() >= first) & (end.dt.weekday() >= first)
    return (wall.dt.weekday() == first) & (end.dt.weekday() == first)


def _outside_session(t: pl.Expr, step: timedelta, calendar: str) -> pl.Expr:
    zone, first, end = SESSION[calendar]
    return pl.all_horizontal(((x.dt.convert_time_zone(zone).dt.hour() < first)
                              | (x.dt.convert_time_zone(zone).dt.hour() >= end))
                             for x in (t, t + step - timedelta(microseconds=1)))


def _label(tz: str) -> str:
    if tz == NY_CLOSE:
        return f"{NY_CLOSE} (UTC+2, UTC+3 in US summer)"
    if tz.startswith("Etc/GMT"):
        return f"UTC{-int(tz[7:]):+d} ({tz})"
    return f"{tz} (with its DST)" if tz in DST_CLOCKS else tz


def _fits(wall: pl.Series, tz: str, step: timedelta, calendar: str, session: bool = False) -> bool:
    utc = from_server(wall, tz)
    bad = _in_closure(pl.col("t"), step, calendar)
    if session:
        bad = bad | _outside_session(pl.col("t"), step, calendar)
    return not utc.to_frame("t").select(bad.fill_null(True)).to_series().any()


def _best_clock(active: pl.DataFrame, bad: pl.DataFrame, server_tz: str, step: timedelta, calendar: str,
                session: bool = False) -> tuple[str, str] | None:
    """The clock to name (see :data:`CANDIDATES`) and, when several fixed offsets fit, their range."""
    wall = to_server(active["time"], server_tz)
    bad_wall = to_server(bad["time"], server_tz)
    some = bad_wall.gather_every(max(1, bad_wall.len() // 64))  # a sample of the offending bars first
    fit = [tz for tz in CANDIDATES if tz != server_tz and _fits(some, tz, step, calendar, session)
           and _fits(wall, tz, step, calendar, session)]
    fixed = [tz for tz in fit if tz in FIXED_CLOCKS]
    dst = [tz for tz in fit if tz in DST_CLOCKS]
    if NY_CLOSE in fit:
        return _label(NY_CLOSE), NY_CLOSE
    if dst and len(fixed) <= 2:  # a sharp fit: a DST clock that also fits is the likelier server
        return _label(dst[0]), dst[0]
    if fixed:
        mid = fixed[(len(fixed) - 1) // 2]
        span = f" (any of {_label(fixed[0]).split()[0]}..{_label(fixed[-1]).split()[0]} fits)" if len(fixed) > 2 else ""
        return _label(mid) + span, mid
    return (_label(dst[0]), dst[0]) if dst else None


def check_clock(bars: pl.DataFrame, source: str, calendar: str, server_tz: str) -> None:
    """Refuse (or warn about) bars with activity while the market of ``calendar`` is closed.

    ``bars``: valid canonical bars of one timeframe (optional ``source_row``), times UTC, read with
    ``server_tz``. Raises BarValidationError ``bar while market closed`` naming the first such row
    and the server clock that explains every bar.
    """
    step = TIMEFRAMES.get(bars["timeframe"][0], timedelta(days=1)) if bars.height else timedelta(days=1)
    if step > timedelta(days=1) or closed_expr(pl.col("time"), calendar) is None:
        return
    row = pl.col("source_row") if "source_row" in bars.columns else pl.int_range(1, pl.len() + 1)
    active = bars.select(pl.col("time"), row.alias("_row"), (pl.col("high") > pl.col("low")).alias("_a"),
                         _in_closure(pl.col("time"), step, calendar).alias("_c")).filter(pl.col("_a"))
    bad = active.filter(pl.col("_c"))
    if bad.is_empty():
        _check_session(active, source, calendar, server_tz, step)
        return
    first, n = bad.row(0, named=True), bad.height
    when = first["time"]
    what = (f"{n} bar{'s' if n > 1 else ''} with trading activity while the {calendar} market is closed "
            f"(first: {when:%A %Y-%m-%d %H:%M} UTC, read with server_tz={server_tz})")
    fit = (_best_clock(active, bad, server_tz, step, calendar, session=True) if calendar in SESSION else None) \
        or _best_clock(active, bad, server_tz, step, calendar)
    if fit is None:
        warnings.warn(f"{source}: row {first['_row']}: {what}; no single server clock explains them: "
                      f"check the data and server_tz", Mt5LabWarning, stacklevel=3)
        return
    raise BarValidationError(source, int(first["_row"]), "bar while market closed",
                             f"{what}: is the server clock {fit[0]}? read with --server-tz {fit[1]}")


def _check_session(active: pl.DataFrame, source: str, calendar: str, server_tz: str, step: timedelta) -> None:
    """The unsure rule: warn about active bars outside the calendar's widest session."""
    if calendar not in SESSION or active.is_empty():
        return
    out = active.filter(_outside_session(pl.col("time"), step, calendar))
    if out.is_empty():
        return
    zone, first_hour, end_hour = SESSION[calendar]
    row = out.row(0, named=True)
    local = row["time"].astimezone(ZoneInfo(zone))
    fit = _best_clock(active, out, server_tz, step, calendar, session=True)
    hint = f": is the server clock {fit[0]}?" if fit else ""
    warnings.warn(f"{source}: row {row['_row']}: {out.height} {calendar} bars with trading activity outside "
                  f"{first_hour:02d}:00-{end_hour:02d}:00 {zone} (first at {local:%H:%M} local, read with "
                  f"server_tz={server_tz}){hint}", Mt5LabWarning, stacklevel=4)
