"""The broker's server clock to UTC and back: the one conversion every entry point uses.

MT5 terminals stamp bars in the broker's server time, often UTC+2 in winter and UTC+3 in summer on
the New York-close convention. A ``server_tz`` says which clock:

* an IANA zone, e.g. ``Europe/Athens``;
* a fixed offset ``Etc/GMT-2``. Note the inverted sign of the ``Etc`` zones (POSIX's convention:
  the sign says where UTC is from the zone): ``Etc/GMT-2`` is UTC+2, ``Etc/GMT+5`` is UTC-5;
* :data:`NY_CLOSE` (``"NY+7"``): New York wall time plus 7 hours;
* ``UTC``.

Rules, for every timeframe (D1 and W1 included): a naive server time is the bar's open on the server
clock; its UTC instant is that wall time on ``server_tz``. A D1 bar opens at the server's midnight
(a NY+7 server's D1 bar of 5 March opens 2024-03-04 22:00 UTC), and a bar grid over 1 h (H4, D1) is
anchored at the server's midnight, which :func:`to_server` exposes to validation and calendars.

DST: a server time that occurs twice (clocks go back) resolves by row order: its first row is the
earlier instant (before the change), a later row the second one, so both bars are kept. A server
time that does not exist (clocks go forward) is refused, never shifted.

Integer times are epoch values of the naive server clock (MT5's ``copy_rates_*`` arrays hold
seconds); the unit (s, ms, us, ns) is detected from the magnitude of the first value and reported
with :class:`~mt5lab.errors.Mt5LabWarning`. Every time must lie in :data:`TIME_RANGE`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl

from mt5lab.catalog import TIMEFRAMES
from mt5lab.config import load_env
from mt5lab.errors import BarValidationError, ConfigError, Mt5LabWarning

NY_CLOSE = "NY+7"
"""``server_tz`` of MT5's "New York close" servers: New York wall time plus 7 hours (UTC+2 in winter,
UTC+3 in summer, switching on US dates). No IANA zone has this rule; Europe/Athens is an hour off for
a few weeks each year."""
NY_CLOSE_SHIFT = timedelta(hours=7)
SERVER_TZ_ENV = "MT5LAB_SERVER_TZ"
"""Environment variable (or ``.env`` entry) naming the desk's server clock, used where no
``server_tz`` is passed."""
TIME_RANGE = (datetime(1970, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
"""Bar times outside ``[1970-01-01, 2100-01-01)`` UTC are refused as out of range."""
EPOCH_UNITS = (("s", 1e11), ("ms", 1e14), ("us", 1e17), ("ns", float("inf")))
"""Epoch unit by magnitude of an integer time: below 1e11 seconds (year 5138), below 1e14
milliseconds, below 1e17 microseconds, else nanoseconds. Every unit covers 1973..2100 unambiguously."""
_UNIT_NAMES = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}
Fail = Callable[..., BarValidationError]
_US = timedelta(microseconds=1)
_DAY_US = 86_400_000_000


def check_server_tz(server_tz: str) -> str:
    """The clock ``server_tz`` names (``utc`` and ``ny+7`` in any case too), else ConfigError (one line)."""
    if isinstance(server_tz, str) and server_tz.strip().upper() in (NY_CLOSE, "UTC"):
        return server_tz.strip().upper()
    try:
        ZoneInfo(server_tz)
    except (ValueError, KeyError, OSError, TypeError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise ConfigError(f"unknown server_tz {server_tz!r}: expected an IANA zone such as "
                          f"'Europe/Athens' or 'Etc/GMT-2' (= UTC+2), or {NY_CLOSE!r}") from exc
    return server_tz


def resolve_server_tz(server_tz: str | None, source: str, *, required: bool) -> str:
    """The server clock to read with: ``server_tz`` if given, else :data:`SERVER_TZ_ENV` (environment
    or ``.env``), else UTC for a format that carries no server clock (a generic table).

    ``required`` (an MT5 or MT4 export, an MT5 ``copy_rates_*`` frame): with neither set, a
    ConfigError naming ``source``. Defaulting such times to UTC is how bars end up 2-3 h off; the
    choice must be explicit.
    """
    if server_tz is None:
        load_env()
        from_env = os.environ.get(SERVER_TZ_ENV) or None
        if from_env is not None:
            try:
                return check_server_tz(from_env)
            except ConfigError as exc:
                raise ConfigError(f"{SERVER_TZ_ENV}: {exc}") from None
    if server_tz is None:
        if required:
            raise ConfigError(f"{source}: times are on the broker's server clock: pass server_tz= "
                              f"(CLI: --server-tz), e.g. {NY_CLOSE!r}, 'Etc/GMT-2' (= UTC+2) or 'UTC', "
                              f"or set {SERVER_TZ_ENV}")
        return "UTC"
    return check_server_tz(server_tz)


def _zone(server_tz: str) -> tuple[str, timedelta]:
    """(IANA zone, shift): server wall time = wall time of the zone + shift."""
    tz = check_server_tz(server_tz)
    return ("America/New_York", NY_CLOSE_SHIFT) if tz == NY_CLOSE else (tz, timedelta(0))


def to_server(utc, server_tz: str):
    """UTC instants (Series or Expr, tz-aware) to naive server wall times (same type).

    The inverse of :func:`localize` (both instants of a DST fold map to the same wall time). Bar
    grids and calendars use it: an H4 or D1 bar is aligned when its server wall time is.
    """
    zone, shift = _zone(server_tz)
    wall = utc.dt.convert_time_zone(zone).dt.replace_time_zone(None)
    return wall + shift if shift else wall


def from_server(wall, server_tz: str, ambiguous: str = "earliest"):
    """Naive server wall times (Series or Expr) to UTC; non-existent wall times become null."""
    zone, shift = _zone(server_tz)
    local = (wall - shift if shift else wall).dt.replace_time_zone(zone, ambiguous=ambiguous,
                                                                     non_existent="null")
    return local.dt.convert_time_zone("UTC")


def on_grid(t, timeframe, server_tz: str):
    """Whether bar opens ``t`` (tz-aware Series or Expr) sit on ``server_tz``'s grid of ``timeframe``,
    anchored at the server's midnight: M1..D1 on a multiple of the bar since a server midnight, W1 at a
    server midnight on a Sunday (MT5) or a Monday. ``timeframe``: a name, or an Expr of names (a frame
    of several timeframes)."""
    wall = to_server(t, server_tz)
    us = wall.dt.epoch("us")
    week_start = (us % _DAY_US == 0) & wall.dt.weekday().is_in([1, 7])
    if isinstance(timeframe, str):
        return week_start if timeframe == "W1" else us % (TIMEFRAMES[timeframe] // _US) == 0
    steps = timeframe.replace_strict({k: v // _US for k, v in TIMEFRAMES.items()}, default=None,
                                     return_dtype=pl.Int64)
    return pl.when(timeframe == "W1").then(week_start).otherwise(us % steps == 0)


def every_instant(wall: pl.Series, server_tz: str) -> pl.Series:
    """Every UTC instant of naive server wall times: a fold's wall time gives two, a gap's none."""
    both = pl.concat([from_server(wall, server_tz, "earliest"), from_server(wall, server_tz, "latest")])
    return both.drop_nulls().unique().sort()


def localize(naive: pl.Series, server_tz: str, seen: set | None = None) -> tuple[pl.Series, int | None]:
    """Naive server-clock times (Datetime, no zone) to UTC.

    Returns ``(utc, bad)``: ``bad`` is the index of the first time that does not exist on the server
    clock (skipped when clocks go forward), else None, and ``utc`` is only meaningful when ``bad`` is
    None. A time that occurs twice resolves by order: the first row carrying it (in this call, or in
    ``seen``, which holds the ambiguous wall times of earlier batches and is updated) is the earlier
    instant, later rows the later one.
    """
    zone, shift = _zone(server_tz)
    if zone == "UTC":
        return naive.dt.replace_time_zone("UTC"), None
    t = naive - shift if shift else naive
    early = t.dt.replace_time_zone(zone, ambiguous="earliest", non_existent="null")
    bad = early.is_null() & naive.is_not_null()
    if bad.any():
        return early, int(bad.arg_true()[0])
    late = t.dt.replace_time_zone(zone, ambiguous="latest", non_existent="null")
    folded = early != late
    if not folded.any():
        return early.dt.convert_time_zone("UTC"), None
    seen = set() if seen is None else seen
    idx = folded.arg_true().to_list()
    repeat = []
    for i in idx:  # a DST fold has a handful of rows: a plain loop
        repeat.append(naive[i] in seen)
        seen.add(naive[i])
    later = pl.Series([False] * naive.len()).scatter(idx, repeat)
    out = pl.select(pl.when(later).then(late).otherwise(early)).to_series()
    return out.dt.convert_time_zone("UTC"), None


def epoch_unit(value: int) -> str:
    """The epoch unit an integer time is in, by magnitude (see :data:`EPOCH_UNITS`)."""
    for unit, below in EPOCH_UNITS:
        if abs(value) < below:
            return unit
    return "ns"  # pragma: no cover - the last bound is infinite


def from_epoch(values: pl.Series, unit: str) -> pl.Series:
    """Integer epoch values in ``unit`` to naive microsecond datetimes; out of range -> null."""
    per_us = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": 0}[unit]
    v = values.cast(pl.Int64, strict=False)
    lo = (TIME_RANGE[0] - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    hi = (TIME_RANGE[1] - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    if per_us:
        ok = v.is_between(lo // per_us, hi // per_us, closed="left")
        us = pl.select(pl.when(ok).then(v * per_us)).to_series()
    else:
        us = pl.select(pl.when(v.is_between(lo * 1000, hi * 1000, closed="left")).then(v // 1000)).to_series()
    return us.cast(pl.Datetime("us"))


def epoch_times(values: pl.Series, unit: str | None, fail: Fail, rows: pl.Series, *, source: str,
                server_tz: str, raw: pl.Series | None = None) -> tuple[pl.Series, str]:
    """Integer epoch ``values`` on the server clock to naive datetimes, and the unit used: ``unit``, or
    (None) the one the first non-null value's magnitude says, which is then said with
    :func:`note_unit`. A value outside :data:`TIME_RANGE` fails naming its row (``raw``: the value as
    written, when ``values`` was parsed from text)."""
    raw = values if raw is None else raw
    if unit is None:
        present = values.drop_nulls()
        unit = epoch_unit(int(present[0])) if present.len() else "s"
        note_unit(source, unit, server_tz)
    out = from_epoch(values, unit)
    bad = (out.is_null() & raw.is_not_null()).arg_true()
    if bad.len():
        i = int(bad[0])
        raise fail("time out of range", f"{raw[i]!r} read as epoch {unit} is outside 1970-01-01..2100-01-01 UTC",
                   int(rows[i]))
    return out, unit


def note_unit(source: str, unit: str, server_tz: str) -> None:
    """Say which epoch unit integer times were read in, on which clock (once per file or frame)."""
    warnings.warn(f"{source}: integer times read as epoch {_UNIT_NAMES[unit]} (detected from their "
                  f"magnitude) on the server clock {server_tz}", Mt5LabWarning, stacklevel=4)


def to_utc(naive: pl.Series, server_tz: str, fail: Fail, rows: pl.Series, raw: pl.Series,
           seen: set | None = None) -> pl.Series:
    """:func:`localize`, with a DST-gap time reported through ``fail`` (naming its row), and the
    result checked against :data:`TIME_RANGE`."""
    utc, bad = localize(naive, server_tz, seen)
    if bad is not None:
        raise fail("non-existent local time in server_tz",
                   f"{raw[bad]!r} is skipped when clocks go forward in {server_tz}", int(rows[bad]))
    check_range(utc, fail, rows, raw)
    return utc


def check_range(utc: pl.Series, fail: Fail, rows: pl.Series, raw: pl.Series) -> None:
    """Refuse a time outside :data:`TIME_RANGE`, naming its row."""
    out = ~utc.is_between(*TIME_RANGE, closed="left")
    if out.any():
        i = int(out.arg_true()[0])
        raise fail("time out of range", f"{raw[i]!r} is outside 1970-01-01..2100-01-01 UTC", int(rows[i]))
