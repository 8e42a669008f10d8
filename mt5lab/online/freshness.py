"""Freshness of the online store: per timeframe, view and symbol, is the newest value as new as it
should be by now?

The expected newest value is the bar whose close is the latest bar close the symbol's market
calendar allows by ``now - grace`` (:func:`mt5lab.bars.calendars.expected_latest_close`): on the ``fx``
calendar, nothing closes from Friday evening to Sunday evening (New York 17:00), so on a Saturday
Friday's last bar is fresh. ``grace`` is the time a bar may take to arrive after its close
(default: half a bar, at most 15 minutes). Statuses, worst first:

``missing``   no online row (never materialized or updated);
``future``    the row's bar closes after ``now`` (a forming bar was written: look-ahead);
``expired``   older than the view's ttl: :func:`mt5lab.online_features` returns it as null;
``stale``     older than the expected newest bar (``bars_behind`` says by how many bars);
``fresh``     otherwise.

The calendars know regular holidays (:mod:`mt5lab.bars.holidays`), so a holiday is not "behind"; an
ad-hoc closure shows as behind until the next bar. Expected closes follow the server clock's bar grid
(``server_tz``, default ``MT5LAB_SERVER_TZ``, else UTC).
Symbol -> calendar: ``calendars`` argument, else the bundled samples' calendar, else ``default``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from mt5lab.bars.calendars import expected_bar_opens, expected_latest_close, symbol_calendar
from mt5lab.bars.clock import resolve_server_tz
from mt5lab.catalog import TIMEFRAMES, check_timeframe, ttl
from mt5lab.config import resolve
from mt5lab.online.reader import reader
from mt5lab.storage import open_store

PROBLEMS = ("missing", "future", "expired", "stale")
COLUMNS = ("timeframe", "view", "symbol", "calendar", "event_timestamp", "expected_close", "age",
           "age_bars", "bars_behind", "ttl", "status")


def default_grace(timeframe: str) -> timedelta:
    return min(TIMEFRAMES[check_timeframe(timeframe)] / 2, timedelta(minutes=15))


def _bars_between(last_close: datetime, expected: datetime, tf: str, cal: str, server_tz: str) -> int:
    """Expected bars closing in ``(last_close, expected]``."""
    step = TIMEFRAMES[tf]
    if last_close >= expected:
        return 0
    return expected_bar_opens(last_close, expected - step, tf, cal, server_tz).len()


def _rows(tf: str, symbols: list[str], now: datetime, grace: timedelta, calendars, default, profile,
          tz: str):
    step, life = TIMEFRAMES[tf], ttl(tf)
    rows = reader(profile, tf).read(symbols, now=now, keep_expired=True)
    expected = {}
    out = []
    for j, sym in enumerate(symbols):
        cal = symbol_calendar(sym, default, calendars)
        if cal not in expected:
            expected[cal] = expected_latest_close(now - grace, tf, cal, tz)
        exp = expected[cal]
        for view, stamps in rows.event_timestamps.items():
            ts = stamps[j]
            rec = dict(timeframe=tf, view=view, symbol=sym, calendar=cal, event_timestamp=ts,
                       expected_close=exp, age=None, age_bars=None, bars_behind=None, ttl=life)
            if ts is None:
                status = "missing"
            else:
                rec["age"] = now - ts
                rec["age_bars"] = round((now - ts) / step, 2)
                rec["bars_behind"] = _bars_between(ts, exp, tf, cal, tz)
                status = ("future" if ts > now else "expired" if now - ts > life
                          else "stale" if ts < exp else "fresh")
            rec["status"] = status
            out.append(rec)
    return out


def freshness(symbols: list[str] | None = None, *, profile=None, timeframes=None,
              now: datetime | None = None, grace: timedelta | None = None,
              calendars: dict[str, str] | None = None, default_calendar: str = "fx",
              store=None, server_tz: str | None = None) -> pd.DataFrame:
    """One row per timeframe, view and symbol (columns :data:`COLUMNS`).

    ``symbols``: default, every symbol with features in the offline store (per timeframe);
    ``timeframes``: one, a list, or default every stored timeframe; ``now``: default the wall
    clock (tests pass it explicitly); ``server_tz``: the server clock whose bar grid the expected
    closes follow (H4, D1: anchored at its midnight; default ``MT5LAB_SERVER_TZ``, else UTC). A row
    is a problem when ``status`` is in :data:`PROBLEMS`.
    """
    prof = resolve(profile)
    tz = resolve_server_tz(server_tz, "freshness", required=False)
    now = datetime.now(UTC) if now is None else now
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got naive {now!r}")
    if isinstance(timeframes, str):
        timeframes = [timeframes]
    store = store if store is not None or (symbols and timeframes) else open_store(prof)
    tfs = [check_timeframe(t) for t in (timeframes or store.timeframes())]
    out = []
    for tf in tfs:
        syms = list(symbols) if symbols else sorted(store.latest_features(tf)["symbol"].to_list())
        if syms:
            out += _rows(tf, syms, now, default_grace(tf) if grace is None else grace, calendars,
                         default_calendar, prof, tz)
    return pd.DataFrame(out, columns=list(COLUMNS))


def problems(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows a scheduler should alert on."""
    return frame[frame["status"].isin(PROBLEMS)]
