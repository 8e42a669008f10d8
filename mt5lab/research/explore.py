"""Data prep for the visualize notebook: one symbol's feature window, its correlations and counts.

Reads stored feature rows (one per closed bar). Windows are chosen by bar *open* time, and every
value of a row is known only at its ``event_timestamp`` (the bar close): charts that put indicators
on the open-time axis show what the bar produced, not what was knowable at its open.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import polars as pl

from mt5lab.catalog import FEATURE_NAMES, check_timeframe


def parse_time(text: str, name: str = "time") -> datetime | None:
    """An ISO date or datetime as UTC (naive input is taken as UTC); ``""`` gives None."""
    if not text:
        return None
    try:
        t = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{name}: {text!r} is not an ISO date or datetime (e.g. 2012-06-30)") from exc
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def history(store, symbol: str, timeframe: str) -> pl.DataFrame:
    """Every feature row of ``symbol``, sorted by bar open ``time``; ValueError naming the symbols
    the store has when it has none of ``symbol``."""
    tf = check_timeframe(timeframe)
    df = store.read_features(tf, [symbol])
    if df.height == 0:
        have = store.read_features(tf, columns=["symbol"])["symbol"].unique().sort().to_list()
        raise ValueError(f"no {tf} features for {symbol!r} in the store; symbols with {tf} features: "
                         f"{', '.join(have) or 'none (ingest and build first)'}")
    return df.sort("time")


DEFAULT_LAST = 250
"""Bars in a window given neither ``start`` nor ``last``."""


def feature_window(store, symbol: str, timeframe: str, start: str = "", end: str = "",
                   last: int = 0) -> pl.DataFrame:
    """Feature rows of ``symbol``, sorted by bar open ``time``, in one window (ISO times, UTC):

    - ``start`` (and optionally ``end``): every bar with ``start <= time <= end``; ``last`` must
      then be 0, because the window is already bounded (an explicit start is never cut short
      by a count);
    - otherwise: the latest ``last`` bars (0: :data:`DEFAULT_LAST`) with ``time <= end``
      (``end`` empty: the latest bar).

    Raises ValueError: unparsable times, ``start`` after ``end``, ``start`` together with ``last``,
    no such symbol (naming the symbols the store has), or no bars in the window.
    """
    tf = check_timeframe(timeframe)
    lo, hi = parse_time(start, "start"), parse_time(end, "end")
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"start {start} is after end {end}")
    if lo is not None and last:
        raise ValueError(f"start={start} and last={last} both bound the window: give start (and end) for "
                         f"a date range, or last (and end) for the latest bars; set last to 0 with start")
    df = history(store, symbol, tf)
    if lo is not None:
        df = df.filter(pl.col("time") >= lo)
    if hi is not None:
        df = df.filter(pl.col("time") <= hi)
    df = df.sort("time")
    if lo is None:
        df = df.tail(last or DEFAULT_LAST)
    if df.height == 0:
        raise ValueError(f"{symbol} {tf}: no bars between {start or 'the start'} and {end or 'the end'}")
    return df


def window_gaps(frame: pl.DataFrame, timeframe: str, calendar: str = "", server_tz: str | None = None) -> pl.DataFrame:
    """Missing bars inside one symbol's window against its market calendar
    (:func:`mt5lab.bars.calendars.find_gaps`: ``gap_start``, ``gap_end``, ``missing_bars``; UTC).
    ``calendar``: default the symbol's (:func:`mt5lab.bars.calendars.symbol_calendar`); ``server_tz``:
    the bar grid's clock (default ``MT5LAB_SERVER_TZ``, else UTC)."""
    from mt5lab.bars.calendars import find_gaps, symbol_calendar
    from mt5lab.bars.clock import resolve_server_tz

    tf = check_timeframe(timeframe)
    cal = calendar or symbol_calendar(frame["symbol"][0] if frame.height else "")
    tz = resolve_server_tz(server_tz, "window", required=False)
    return find_gaps(frame["time"], tf, cal, tz)


def window_summary(frame: pl.DataFrame) -> dict:
    """Counts a person checks first: rows, extent, pattern hits, null share."""
    nulls = frame.select(pl.col(FEATURE_NAMES).null_count()).row(0)
    return {
        "rows": frame.height,
        "first_bar": frame["time"].min(),
        "last_bar": frame["time"].max(),
        "max_event_timestamp": frame["event_timestamp"].max(),
        "doji": int((frame["cdl_doji"] != 0).sum()),
        "engulfing_bullish": int((frame["cdl_engulfing"] > 0).sum()),
        "engulfing_bearish": int((frame["cdl_engulfing"] < 0).sum()),
        "null_share": round(sum(nulls) / (frame.height * len(FEATURE_NAMES)), 4) if frame.height else None,
    }


def feature_correlation(frame: pl.DataFrame, method: str = "spearman") -> pd.DataFrame:
    """42 x 42 correlation in catalog order (pairwise complete rows). Constant or all-null features
    give NaN rows: a correlation with a constant is undefined, not zero."""
    pdf = frame.select(FEATURE_NAMES).to_pandas().astype("float64")
    return pdf.corr(method=method, min_periods=10).reindex(index=FEATURE_NAMES, columns=FEATURE_NAMES)


def top_correlations(corr: pd.DataFrame, n: int = 10, cross_view_only: bool = True) -> pd.DataFrame:
    """The ``n`` most correlated feature pairs (by |rho|), by default only across different views."""
    from mt5lab.catalog import BY_NAME

    rows = []
    names = list(corr.index)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            r = corr.at[a, b]
            if pd.isna(r) or (cross_view_only and BY_NAME[a].view == BY_NAME[b].view):
                continue
            rows.append({"feature_a": a, "feature_b": b, "rho": round(float(r), 3)})
    out = pd.DataFrame(rows, columns=["feature_a", "feature_b", "rho"])
    return out.reindex(out["rho"].abs().sort_values(ascending=False).index).head(n).reset_index(drop=True)


def undefined_features(corr: pd.DataFrame) -> list[str]:
    """Features whose correlations are all undefined in the window (constant or null there)."""
    c = corr.to_numpy(copy=True)
    np.fill_diagonal(c, np.nan)
    return [name for name, row in zip(corr.index, c, strict=True) if np.isnan(row).all()]
