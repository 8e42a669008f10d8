"""The broker's server clock to UTC.

MT5 terminals stamp bars in the broker's server time, often UTC+2 in winter and UTC+3 in summer on the
New York-close convention. A ``server_tz`` says which clock: an IANA zone (``Europe/Athens``, or a
fixed offset ``Etc/GMT-2``: note the inverted sign of the ``Etc`` zones, ``Etc/GMT-2`` is UTC+2), or
:data:`NY_CLOSE`. A local time that DST makes ambiguous or non-existent is reported, never shifted.
"""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import polars as pl

from mt5lab.errors import ConfigError

NY_CLOSE = "NY+7"
"""``server_tz`` of MT5's "New York close" servers: New York wall time plus 7 hours (UTC+2 in winter,
UTC+3 in summer, switching on US dates). No IANA zone has this rule; Europe/Athens is an hour off for
a few weeks each year."""
NY_CLOSE_SHIFT = timedelta(hours=7)


def check_server_tz(server_tz: str) -> str:
    """``server_tz`` itself if it names a clock mt5lab knows, else ConfigError (one line)."""
    if server_tz == NY_CLOSE:
        return server_tz
    try:
        ZoneInfo(server_tz)
    except (ValueError, KeyError, OSError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise ConfigError(f"unknown server_tz {server_tz!r}: expected an IANA zone such as "
                          f"'Europe/Athens' or 'Etc/GMT-2', or {NY_CLOSE!r}") from exc
    return server_tz


def localize(naive: pl.Series, server_tz: str) -> tuple[pl.Series, int | None, str]:
    """Naive server-clock times (Datetime, no zone) to UTC.

    Returns ``(utc, bad, kind)``: ``bad`` is the index of the first time that does not exist on the
    server clock (``kind`` ``"non-existent"``, skipped when clocks go forward) or occurs twice
    (``"ambiguous"``, DST ends), else None; ``utc`` is only meaningful when ``bad`` is None.
    """
    zone = check_server_tz(server_tz)
    t = naive
    if zone == "UTC":
        return t.dt.replace_time_zone("UTC"), None, ""
    if zone == NY_CLOSE:  # the server clock is New York + 7 h
        t, zone = t - NY_CLOSE_SHIFT, "America/New_York"
    local = t.dt.replace_time_zone(zone, ambiguous="null", non_existent="null")
    nulls = local.is_null().arg_true()
    if nulls.len():
        bad = int(nulls[0])
        one = t.slice(bad, 1).dt.replace_time_zone(zone, ambiguous="earliest", non_existent="null")
        return local, bad, "non-existent" if one.null_count() else "ambiguous"
    return local.dt.convert_time_zone("UTC"), None, ""
