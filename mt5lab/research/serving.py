"""Checks a person runs on the online store: what it serves, how fresh, and whether it equals offline.

- :func:`materialize_timeframes`: offline latest -> online, per timeframe (only what changed).
- :func:`online_snapshot`: :func:`mt5lab.online_features` for several symbols and timeframes.
- :func:`offline_online_equality`: every feature of every symbol's latest offline row against the
  online store, through both read paths (mt5lab's reader and Feast's ``get_online_features``).
  Exact equality: values travel as float64/int64 protobufs, so any difference is a bug.
- :func:`freshness_summary`: :func:`mt5lab.freshness` collapsed to one row per symbol.
- :func:`weekend_scenarios`: what the freshness rule says across a market closure, for a feed whose
  last bar closed at the close before it (a Friday on ``fx`` and ``equity``).

Look-ahead: a ``future`` status (a bar that closes after the read time) is always a failure.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd

from mt5lab.catalog import FEATURE_NAMES, TIMEFRAMES, check_timeframe, ttl

_RANK = {"fresh": 0, "stale": 1, "expired": 2, "future": 3, "missing": 4}


def materialize_timeframes(store, profile, timeframes: list[str], progress: bool = False) -> pd.DataFrame:
    from mt5lab.online.materialize import materialize

    rows = []
    for tf in timeframes:
        r = materialize(store, profile, check_timeframe(tf), progress=progress)
        rows.append({"timeframe": r.timeframe, "symbols": r.symbols, "written": r.written,
                     "latest_event": r.latest_event})
    return pd.DataFrame(rows)


def online_snapshot(symbols: list[str], timeframes: list[str], profile=None, now: datetime | None = None,
                    keep_expired: bool = True) -> pd.DataFrame:
    """One row per (timeframe, symbol): the 42 features, per-view timestamps and statuses."""
    from mt5lab.online.reader import online_features

    parts = []
    for tf in timeframes:
        df = online_features(symbols, profile=profile, timeframe=check_timeframe(tf), now=now,
                             keep_expired=keep_expired)
        parts.append(df.insert(0, "timeframe", tf) or df)
    return pd.concat(parts, ignore_index=True)


def snapshot_columns(snapshot: pd.DataFrame, rows: list[str] | None = None) -> pd.DataFrame:
    """Features (and status) as rows, ``SYMBOL TF`` as columns: the table a person scans."""
    wide = snapshot.set_index(snapshot["symbol"] + " " + snapshot["timeframe"])
    keep = rows or ["status", "ohlcv_features__event_timestamp", *FEATURE_NAMES]
    return wide[keep].T


def status_counts(snapshot: pd.DataFrame) -> dict:
    return {f"{r.symbol} {r.timeframe}": r.status for r in snapshot.itertuples()}


def _equal(a, b) -> bool:
    na, nb = a is None or a != a, b is None or b != b  # None or NaN
    if na or nb:
        return na and nb
    return float(a) == float(b)


def offline_online_equality(store, profile, timeframe: str, symbols: list[str] | None = None) -> pd.DataFrame:
    """Per symbol: features compared and mismatches, offline latest vs online (both read paths)."""
    from mt5lab.online.feast_read import online_frame
    from mt5lab.online.reader import online_features

    tf = check_timeframe(timeframe)
    offline = store.latest_features(tf, symbols)
    if offline.height == 0:
        return pd.DataFrame(columns=["timeframe", "symbol", "offline_event", "online_event", "compared",
                                     "mismatches_mt5lab", "mismatches_feast", "mismatched"])
    syms = offline["symbol"].to_list()
    mine = online_features(syms, profile=profile, timeframe=tf, keep_expired=True).set_index("symbol")
    feast = online_frame(syms, tf, profile).set_index("symbol")
    rows = []
    for off in offline.iter_rows(named=True):
        s = off["symbol"]
        bad_m = [f for f in FEATURE_NAMES if not _equal(off[f], _py(mine.at[s, f]))]
        bad_f = [f for f in FEATURE_NAMES if not _equal(off[f], _py(feast.at[s, f]))]
        on_ts = mine.at[s, "ohlcv_features__event_timestamp"]
        rows.append({"timeframe": tf, "symbol": s, "offline_event": off["event_timestamp"],
                     "online_event": None if pd.isna(on_ts) else on_ts.to_pydatetime(),
                     "compared": len(FEATURE_NAMES), "mismatches_mt5lab": len(bad_m),
                     "mismatches_feast": len(bad_f), "mismatched": " ".join(sorted(set(bad_m + bad_f)))})
    return pd.DataFrame(rows)


def _py(v):
    if v is None:
        return None
    try:
        return None if pd.isna(v) else v
    except (TypeError, ValueError):
        return v


def freshness_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (timeframe, symbol) from :func:`mt5lab.freshness`: worst status over views."""
    if frame.empty:
        return frame
    rows = []
    for (tf, sym), g in frame.groupby(["timeframe", "symbol"], sort=False):
        worst = max(g["status"], key=lambda s: _RANK.get(s, 9))
        first = g.iloc[0]
        rows.append({
            "timeframe": tf, "symbol": sym, "calendar": first["calendar"],
            "last bar close (UTC)": g["event_timestamp"].max(), "expected close (UTC)": first["expected_close"],
            "age (h)": None if pd.isna(first["age"]) else round(first["age"].total_seconds() / 3600, 1),
            "age (bars)": first["age_bars"], "bars behind (market open)": first["bars_behind"],
            "ttl (h)": first["ttl"].total_seconds() / 3600, "status": worst,
            "views agree": bool(g["status"].nunique() == 1),
        })
    return pd.DataFrame(rows)


def weekend_scenarios(timeframe: str, calendar: str, after: datetime) -> pd.DataFrame:
    """Freshness across the first market closure after ``after``, for a feed whose last bar closed
    right before it. Statuses follow :mod:`mt5lab.freshness`: fresh, stale, expired."""
    from mt5lab.bars.calendars import expected_bar_opens, expected_latest_close, market_closed_between
    from mt5lab.online.freshness import default_grace

    tf = check_timeframe(timeframe)
    step, grace, life = TIMEFRAMES[tf], default_grace(tf), ttl(tf)
    opens = expected_bar_opens(after, after + timedelta(days=14), tf, calendar)
    gaps = opens.diff().drop_nulls()
    i = next((k for k, d in enumerate(gaps) if d > step), None)
    if i is None:
        raise ValueError(f"no closure of the {calendar} calendar within two weeks after {after}")
    last_close, reopen = opens[i] + step, opens[i + 1]
    instants = [
        ("just after the last close", last_close + timedelta(minutes=1)),
        ("closure, middle", last_close + (reopen - last_close) / 2),
        ("closure, just before reopen", reopen - timedelta(minutes=1)),
        ("first bar after reopen closed", reopen + step + grace + timedelta(minutes=1)),
        ("ttl exceeded", last_close + life + timedelta(minutes=1)),
    ]
    rows = []
    for label, now in instants:
        expected = expected_latest_close(now - grace, tf, calendar)
        behind = expected_bar_opens(last_close, expected - step, tf, calendar).len() if expected > last_close else 0
        status = "expired" if now - last_close > life else "stale" if last_close < expected else "fresh"
        rows.append({"scenario": label, "now (UTC)": now, "weekday": f"{now:%a %H:%M}",
                     "hours since last close": round((now - last_close).total_seconds() / 3600, 2),
                     "market closed (h)": round(market_closed_between(last_close, now, calendar)
                                                .total_seconds() / 3600, 2),
                     "expected close (UTC)": expected, "bars behind": behind, "status": status})
    return pd.DataFrame(rows).assign(timeframe=tf, calendar=calendar, last_close=last_close)


def latest_close(store, timeframe: str, symbol: str) -> datetime:
    """The latest stored bar close of ``symbol`` (``event_timestamp`` of its latest feature row)."""
    df = store.latest_features(check_timeframe(timeframe), [symbol])
    if df.height == 0:
        raise ValueError(f"no {timeframe} features for {symbol!r}")
    return df["event_timestamp"][0]


def weekend_before(store, timeframe: str, symbol: str, calendar: str) -> pd.DataFrame:
    """:func:`weekend_scenarios` for the last full closure inside ``symbol``'s stored history."""
    last = latest_close(store, timeframe, symbol)
    return weekend_scenarios(timeframe, calendar, last - timedelta(days=10))



def equality_all(store, profile, timeframes: list[str]) -> pd.DataFrame:
    """:func:`offline_online_equality` for every timeframe, one table."""
    parts = [offline_online_equality(store, profile, tf) for tf in timeframes]
    return pd.concat([p for p in parts if not p.empty], ignore_index=True) if parts else pd.DataFrame()


def equality_summary(table: pd.DataFrame) -> dict:
    return {"symbols": len(table), "compared": int(table["compared"].sum()),
            "mismatches_mt5lab": int(table["mismatches_mt5lab"].sum()),
            "mismatches_feast": int(table["mismatches_feast"].sum()),
            "event_timestamps_equal": bool((table["offline_event"] == table["online_event"]).all())}


def freshness_right_after(store, profile, timeframes: list[str], minutes: int = 1) -> pd.DataFrame:
    """Freshness read ``minutes`` after each timeframe's latest stored close: what a live feed sees."""
    from mt5lab.online.freshness import freshness

    parts = []
    for tf in timeframes:
        latest = store.latest_features(check_timeframe(tf))
        if latest.height:
            now = latest["event_timestamp"].max() + timedelta(minutes=minutes)
            parts.append(freshness_summary(freshness(profile=profile, timeframes=tf, now=now,
                                                     store=store)).assign(read_at=now))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def weekend_tables(store, timeframes: list[str]) -> pd.DataFrame:
    """:func:`weekend_before` for every stored symbol of every timeframe, with its own calendar."""
    from mt5lab.bars.calendars import symbol_calendar

    parts = []
    for tf in timeframes:
        for sym in sorted(store.latest_features(check_timeframe(tf))["symbol"].to_list()):
            parts.append(weekend_before(store, tf, sym, symbol_calendar(sym)).assign(symbol=sym))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
