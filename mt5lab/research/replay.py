"""Replaying a past instant: what the online store served, and how fresh it was, at ``as_of``.

The online store holds one row per symbol, the latest; read "as of" an earlier instant, every value
is a bar that closes later (``future``). A replay therefore reads the **offline** store, which keeps
every feature row: for each symbol, the newest row with ``event_timestamp <= as_of`` (Feast's
point-in-time rule), judged with the same freshness rule as :mod:`mt5lab.online.freshness` at
``as_of``: ``missing`` (no row by then), ``expired`` (older than the view's ttl; values kept and
flagged), ``stale`` (older than the newest bar the symbol's market calendar expects by
``as_of - grace``), else ``fresh``. A replay never returns ``future``: it cannot see past ``as_of``.

:func:`snapshot_at` and :func:`freshness_at` are what notebook 05 calls: live reads when ``as_of`` is
None, a replay otherwise.

Times are UTC; values are the catalog's. No look-ahead: rows closing after ``as_of`` are never read.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from mt5lab.catalog import FEATURE_NAMES, TIMEFRAMES, VIEW_NAMES, check_timeframe, ttl


def _latest_by(store, tf: str, symbols: list[str], as_of: datetime) -> dict[str, dict]:
    """The newest feature row of each symbol with ``event_timestamp <= as_of``."""
    life = ttl(tf)
    near = store.read_features(tf, symbols, start=as_of - life - TIMEFRAMES[tf], end=as_of)
    rows = {r["symbol"]: r for r in near.sort("event_timestamp").group_by("symbol").last().iter_rows(named=True)}
    for sym in (s for s in symbols if s not in rows):  # older than the ttl (expired) or none at all
        old = store.read_features(tf, [sym], end=as_of)
        if old.height:
            rows[sym] = old.sort("event_timestamp").row(-1, named=True)
    return rows


def _status(ts: datetime | None, as_of: datetime, expected: datetime, life) -> str:
    if ts is None:
        return "missing"
    return "expired" if as_of - ts > life else "stale" if ts < expected else "fresh"


def replay_freshness(store, symbols: list[str], timeframes: list[str], as_of: datetime,
                     server_tz: str | None = None) -> pd.DataFrame:
    """:func:`mt5lab.freshness` as it would have answered at ``as_of`` (same columns, one row per
    timeframe, view and symbol), from the offline store."""
    from mt5lab.bars.calendars import expected_bar_opens, expected_latest_close, symbol_calendar
    from mt5lab.bars.clock import resolve_server_tz
    from mt5lab.online.freshness import COLUMNS, default_grace

    tz = resolve_server_tz(server_tz, "freshness", required=False)
    out = []
    for tf in (check_timeframe(t) for t in timeframes):
        step, life = TIMEFRAMES[tf], ttl(tf)
        latest = _latest_by(store, tf, symbols, as_of)
        for sym in symbols:
            cal = symbol_calendar(sym)
            exp = expected_latest_close(as_of - default_grace(tf), tf, cal, tz)
            ts = latest[sym]["event_timestamp"] if sym in latest else None
            behind = (None if ts is None else 0 if ts >= exp
                      else expected_bar_opens(ts, exp - step, tf, cal, tz).len())
            for view in VIEW_NAMES:
                out.append(dict(timeframe=tf, view=view, symbol=sym, calendar=cal, event_timestamp=ts,
                                expected_close=exp, age=None if ts is None else as_of - ts,
                                age_bars=None if ts is None else round((as_of - ts) / step, 2),
                                bars_behind=behind, ttl=life, status=_status(ts, as_of, exp, life)))
    return pd.DataFrame(out, columns=list(COLUMNS))


def replay_snapshot(store, symbols: list[str], timeframes: list[str], as_of: datetime) -> pd.DataFrame:
    """One row per (timeframe, symbol) as :func:`mt5lab.research.serving.online_snapshot` shows it
    (``status``, ``<view>__event_timestamp``, the 42 features; expired values kept and flagged),
    replayed at ``as_of`` from the offline store."""
    fresh = replay_freshness(store, symbols, timeframes, as_of)
    rows = []
    for tf in (check_timeframe(t) for t in timeframes):
        latest = _latest_by(store, tf, symbols, as_of)
        for sym in symbols:
            got = latest.get(sym, {})
            status = fresh[(fresh["timeframe"] == tf) & (fresh["symbol"] == sym)]["status"].iloc[0]
            row = {"timeframe": tf, "symbol": sym, "status": status}
            row |= {f"{v}__event_timestamp": got.get("event_timestamp") for v in VIEW_NAMES}
            row |= {f"{v}__status": status for v in VIEW_NAMES}
            row |= {f: got.get(f) for f in FEATURE_NAMES}
            rows.append(row)
    return pd.DataFrame(rows)


def snapshot_at(store, profile, symbols: list[str], timeframes: list[str],
                as_of: datetime | None = None) -> pd.DataFrame:
    """The online snapshot now (``as_of`` None: the online store, read now) or replayed at ``as_of``."""
    if as_of is None:
        from mt5lab.research.serving import online_snapshot

        return online_snapshot(symbols, timeframes, profile)
    return replay_snapshot(store, symbols, timeframes, as_of)


def freshness_at(store, profile, symbols: list[str], timeframes: list[str],
                 as_of: datetime | None = None) -> pd.DataFrame:
    """:func:`mt5lab.freshness` of exactly ``symbols`` now (``as_of`` None) or replayed at ``as_of``."""
    if as_of is None:
        from mt5lab.online.freshness import freshness

        return freshness(symbols, profile=profile, timeframes=timeframes, store=store)
    return replay_freshness(store, symbols, timeframes, as_of)

