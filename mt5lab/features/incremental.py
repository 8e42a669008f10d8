"""Incremental feature rows: the features of new (or revised) bars from the last W stored bars.

Per symbol (``W = catalog.MAX_WARMUP``):

1. Read the stored history back to at least ``W + 1`` bars before the first new bar (a bounded read,
   widened to the whole history when that is shorter), with the stored ``obv``/``ad`` over it.
2. ``t*`` = the earliest bar that is new, or differs from the stored bar at its time (a revision),
   or is stored without a feature row (an earlier run stopped between its writes). No ``t*``: the
   symbol is up to date and yields no rows (idempotent).
3. Window = the ``W`` bars before ``t*`` plus every bar from ``t*`` on (stored, revised, new);
   ``carry`` = ``(obv, ad, close)`` of the bar before the window, from the store. Features are
   computed on the window and kept from ``t*`` on: those rows are ``>= W`` bars deep, so they equal
   a full rebuild within ``WARMUP_TOLERANCE`` (prefix invariance), and ``obv``/``ad`` bit for bit.
   With ``<= W`` bars before ``t*`` the window is the whole history: exactly a rebuild.

Look-ahead: a row's features use its bar and earlier bars only. Refusing bars that have not closed
is the caller's job (:func:`mt5lab.online.update.update`). Writing is the caller's job too.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

from mt5lab.catalog import MAX_WARMUP, TIMEFRAMES
from mt5lab.errors import StoreError
from mt5lab.features.compute import compute_features
from mt5lab.storage.base import now_utc

W = MAX_WARMUP
_VALUES = ("open", "high", "low", "close", "tick_volume", "spread", "real_volume")


def _plan(new: pl.DataFrame, stored: pl.DataFrame, feats: pl.DataFrame, full: bool):
    """One symbol: ``None`` (up to date), ``"more"`` (needs the whole history) or
    ``(t_star, window, carry, offset)``."""
    j = new.join(stored.select("time", *_VALUES), on="time", how="left", suffix="__s")
    same = pl.lit(True)
    for c in _VALUES:
        same = same & (pl.col(c).eq_missing(pl.col(f"{c}__s")))
    changed = j.filter(~same.fill_null(False) | pl.col("open__s").is_null())["time"]
    unfeatured = stored.join(feats, on="time", how="anti")["time"]
    cand = pl.concat([changed, unfeatured])
    if cand.len() == 0:
        return None
    t_star = cand.min()
    merged = pl.concat([stored.join(new, on="time", how="anti"), new]).sort("time")
    i_star = int(merged["time"].search_sorted(t_star))
    if i_star <= W and not full:
        return "more"
    w0 = max(0, i_star - W)
    carry = None
    if w0 > 0:
        prev = merged.row(w0 - 1, named=True)
        f = feats.filter(pl.col("time") == prev["time"])
        if f.height != 1 or f["obv"][0] is None or f["ad"][0] is None:
            raise StoreError(f"{prev['symbol']}: no stored obv/ad for {prev['time']}; run `mt5lab build`")
        carry = (f["obv"][0], f["ad"][0], prev["close"])
    return t_star, merged.slice(w0), carry, w0


def _history(store, tf: str, symbols: list[str], first_new: datetime, full: bool):
    step = TIMEFRAMES[tf]
    # 3x the bars' span covers FX and daily closures; equity intraday falls back to a full read.
    start = None if full else first_new - 3 * (W + 1) * step - timedelta(days=14)
    bars = store.read_bars(tf, symbols, start=start)
    feats = store.read_features(tf, symbols, start=None if start is None else start + step,
                                columns=["symbol", "time", "event_timestamp", "obv", "ad"])
    return bars, feats


def incremental_rows(store, tf: str, frame: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, datetime]]:
    """Feature rows for the canonical bars ``frame`` (one timeframe ``tf``) from the stored history of
    ``store``: every row from each changed symbol's ``t*`` on, stamped ``created_timestamp`` = now,
    and ``{symbol: t*}``. Symbols already up to date give no rows. Reads only; writes nothing.

    Raises StoreError when the stored obv/ad the carry needs is missing (run ``mt5lab build``).
    """
    symbols = sorted(frame["symbol"].unique().to_list())
    new_by = frame.partition_by("symbol", as_dict=True)
    plans: dict[str, tuple] = {}
    todo, full = symbols, False
    while todo:
        bars, feats = _history(store, tf, todo, frame["time"].min(), full)
        bars_by = bars.partition_by("symbol", as_dict=True)
        feats_by = feats.partition_by("symbol", as_dict=True)
        more = []
        for s in todo:
            p = _plan(new_by[(s,)], bars_by.get((s,), bars.clear()), feats_by.get((s,), feats.clear()), full)
            if p == "more":
                more.append(s)
            elif p is not None:
                plans[s] = p
        todo, full = more, True
    if not plans:
        return pl.DataFrame(), {}
    windows = pl.concat([p[1] for p in plans.values()])
    out = compute_features(windows, tf, carry={s: p[2] for s, p in plans.items() if p[2]},
                           history_offset={s: p[3] for s, p in plans.items()})
    starts = pl.DataFrame({"symbol": list(plans), "t_star": [p[0] for p in plans.values()]},
                          schema={"symbol": pl.String, "t_star": pl.Datetime("us", "UTC")})
    out = out.join(starts, on="symbol").filter(pl.col("time") >= pl.col("t_star")).drop("t_star")
    out = out.insert_column(3, pl.lit(now_utc(), pl.Datetime("us", "UTC")).alias("created_timestamp"))
    return out, {s: p[0] for s, p in plans.items()}
