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

Warm state (:class:`Tails`, for a long-running writer such as ``mt5lab follow``): per symbol, the
stored tail the next window needs, the last ``W + 1`` bars with their ``obv``/``ad``, kept in memory.
A symbol whose new bars all come after its tail (the live case: one bar per close) skips step 1: the
window and the carry come from the tail, the very bars and values the read would return, so the rows
are identical to the store path's. Before a tail is used, one bounded read per cycle checks it against
the store (the bars from the tail's newest one on, and that bar's feature row with its
``created_timestamp``): anything else there (another writer, a revision, a write that was lost)
drops the tail and the symbol takes the store path, which fills the tail again. A tail changes only
once the caller's writes succeeded (:meth:`Tails.commit`); after a failed write the caller forgets it.

Look-ahead: a row's features use its bar and earlier bars only. Refusing bars that have not closed
is the caller's job (:func:`mt5lab.online.update.update`). Writing is the caller's job too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from mt5lab.catalog import BAR_SCHEMA, MAX_WARMUP, TIMEFRAMES
from mt5lab.errors import StoreError
from mt5lab.features.compute import compute_features
from mt5lab.storage.base import now_utc

W = MAX_WARMUP
_VALUES = ("open", "high", "low", "close", "tick_volume", "spread", "real_volume")
_BARS = list(BAR_SCHEMA)
_FEATS = ["symbol", "time", "event_timestamp", "created_timestamp", "obv", "ad"]


def _plan(new: pl.DataFrame, stored: pl.DataFrame, feats: pl.DataFrame, full: bool):
    """One symbol: ``(plan, merged)``; plan is ``None`` (up to date), ``"more"`` (needs the whole
    history) or ``(t_star, window, carry, offset)``; ``merged`` the stored bars with the new ones."""
    j = new.join(stored.select("time", *_VALUES), on="time", how="left", suffix="__s")
    same = pl.lit(True)
    for c in _VALUES:
        same = same & (pl.col(c).eq_missing(pl.col(f"{c}__s")))
    changed = j.filter(~same.fill_null(False) | pl.col("open__s").is_null())["time"]
    unfeatured = stored.join(feats, on="time", how="anti")["time"]
    cand = pl.concat([changed, unfeatured])
    if cand.len() == 0:
        return None, stored
    t_star = cand.min()
    merged = pl.concat([stored.join(new, on="time", how="anti"), new]).sort("time")
    i_star = int(merged["time"].search_sorted(t_star))
    if i_star <= W and not full:
        return "more", None
    w0 = max(0, i_star - W)
    carry = None
    if w0 > 0:
        prev = merged.row(w0 - 1, named=True)
        f = feats.filter(pl.col("time") == prev["time"])
        if f.height != 1 or f["obv"][0] is None or f["ad"][0] is None:
            raise StoreError(f"{prev['symbol']}: no stored obv/ad for {prev['time']}; run `mt5lab build`")
        carry = (f["obv"][0], f["ad"][0], prev["close"])
    return (t_star, merged.slice(w0), carry, w0), merged


def _history(store, tf: str, symbols: list[str], first_new: datetime, full: bool):
    step = TIMEFRAMES[tf]
    # 3x the bars' span covers FX and daily closures; equity intraday falls back to a full read.
    start = None if full else first_new - 3 * (W + 1) * step - timedelta(days=14)
    bars = store.read_bars(tf, symbols, start=start)
    feats = store.read_features(tf, symbols, start=None if start is None else start + step, columns=_FEATS)
    return bars, feats


_TAIL = {**BAR_SCHEMA, "obv": pl.Float64(), "ad": pl.Float64()}
_CHECKED = {**_TAIL, "created_timestamp": pl.Datetime("us", "UTC")}


@dataclass
class _Tail:
    rows: pl.DataFrame  # the symbol's last <= W + 1 stored bars, oldest first: _TAIL columns
    offset: int  # stored bars before rows[0], counted from the start of the read that found them
    complete: bool  # rows[0] is the symbol's first stored bar
    last: tuple  # rows' newest row (the _TAIL values) ...
    created: datetime | None  # ... and the created_timestamp of its feature row


class Tails:
    """Per symbol of one timeframe, the stored tail the next incremental window needs (see the module
    docstring). Not thread-safe: one writer (one :class:`mt5lab.online.follow.Follower`) holds one.
    The work per call is a fixed number of frame operations whatever the number of symbols.

    Memory: ``W + 1`` bars per symbol (about 60 kB per symbol).
    """

    def __init__(self, timeframe: str):
        self.tf = timeframe
        self._by: dict[str, _Tail] = {}
        self._pending: dict[str, tuple[pl.DataFrame, int, bool]] = {}  # symbol -> (rows before t*, offset, complete)
        self._rows: pl.DataFrame | None = None  # the new feature rows of the pending symbols
        self.hits = 0  # windows planned from a tail (no history read), since creation
        self.token = None  # the store's write token right after this writer's last committed write
        self.verified = 0  # verify() calls that read the store back (the token had moved)

    def __contains__(self, symbol: str) -> bool:
        return symbol in self._by

    def __len__(self) -> int:
        return len(self._by)

    def forget(self, symbols=None) -> None:
        """Drop the tails of ``symbols`` (default all) and anything pending."""
        if symbols is None or symbols:  # a failed or foreign write: read the store back next time
            self.token = None
        for s in (list(self._by) if symbols is None else symbols):
            self._by.pop(s, None)
        self._pending, self._rows = {}, None

    def verify(self, store) -> None:
        """Keep only the tails the store agrees with: from each tail's newest bar on, the store holds
        exactly that bar, and its feature row has the tail's ``obv``, ``ad`` and ``created_timestamp``.

        When the store's write token (:meth:`mt5lab.storage.base.OfflineStore.write_token`) is the one
        seen right after this writer's own last write, nobody wrote since and nothing is read. Else
        every cached tail is checked, so the next matching token vouches for all of them. Call it
        under the store's writer lock."""
        token = store.write_token(self.tf)
        if token is not None and token == self.token:
            return
        self.token = None
        cached = list(self._by)
        if not cached:
            return
        self.verified += 1
        want = pl.DataFrame([(*self._by[s].last, self._by[s].created) for s in cached], schema=_CHECKED,
                            orient="row")
        start = want["time"].min()
        bars = store.read_bars(self.tf, cached, start=start).select(_BARS)
        feats = store.read_features(self.tf, cached, start=start + TIMEFRAMES[self.tf],
                                    columns=["symbol", "time", "created_timestamp", "obv", "ad"])
        since = want.select("symbol", pl.col("time").alias("__last"))
        ok = set(cached)
        for got, cols in ((bars, _BARS), (feats, ["symbol", "time", "created_timestamp", "obv", "ad"])):
            got = got.join(since, on="symbol").filter(pl.col("time") >= pl.col("__last")).select(cols)
            once = got.group_by("symbol").len().filter(pl.col("len") == 1)["symbol"].to_list()
            same = got.filter(pl.col("symbol").is_in(once)).sort("symbol")
            exp = want.filter(pl.col("symbol").is_in(once)).select(cols).sort("symbol")
            ok &= set(same["symbol"].filter(same.hash_rows() == exp.hash_rows()).to_list())
        for s in cached:
            if s not in ok:
                del self._by[s]

    def load(self, store, symbols: list[str], since: datetime) -> None:
        """Fill the tails of ``symbols`` from the store (a follower's start), reading as the store
        path does (``since``: about where the symbols' stored bars end). The store's write token is
        read first: if it has not moved by the first :meth:`verify`, nothing is read back then."""
        token = store.write_token(self.tf)
        todo, full = list(symbols), False
        while todo:
            bars, feats = _history(store, self.tf, todo, since, full)
            bars_by = bars.partition_by("symbol", as_dict=True)
            feats_by = feats.partition_by("symbol", as_dict=True)
            for s in todo:
                self.stage(s, None, bars_by.get((s,), bars.clear()), feats_by.get((s,), feats.clear()), full)
            todo, full = ([] if full else [s for s in todo if s not in self._by]), True
        self.token = token

    def drop_resent(self, frame: pl.DataFrame) -> pl.DataFrame:
        """``frame`` without the rows equal to their symbol's tail's newest bar (a re-sent bar, as a
        follower's first cycle sends: unchanged, the store path would skip it too)."""
        lasts = [self._by[s].last for s in frame["symbol"].unique().to_list() if s in self._by]
        if not lasts:
            return frame
        last = pl.DataFrame(lasts, schema=_TAIL, orient="row").select(_BARS).drop("timeframe")
        return frame.join(last, on=list(last.columns), how="anti", nulls_equal=True, maintain_order="left")

    def plan(self, symbol: str, first_new: datetime):
        """``(t*, tail rows of the window, carry, offset)`` for new bars of ``symbol`` from
        ``first_new`` on, as :func:`_plan` would find them in the store; None when the store path is
        needed (no tail, or a new bar not after it). The window is those tail rows plus the new bars."""
        t = self._by.get(symbol)
        if t is None or first_new <= t.last[2]:
            return None
        w0 = max(0, t.offset + t.rows.height - W)
        j = w0 - t.offset  # the window's first bar, in the tail
        if j < 0 or (w0 > 0 and j < 1):
            return None
        carry = None if w0 == 0 else tuple(t.rows.item(j - 1, c) for c in ("obv", "ad", "close"))
        self._pending[symbol] = (t.rows, t.offset, t.complete)
        self.hits += 1
        return first_new, t.rows.slice(j), carry, w0

    def stage(self, symbol: str, plan, merged: pl.DataFrame, feats: pl.DataFrame, full: bool) -> None:
        """After the store path: the symbol's tail before ``t*`` (all of it when up to date)."""
        t_star = plan[0] if plan is not None else None
        before = merged if t_star is None else merged.filter(pl.col("time") < t_star)
        keep = (before.select(_BARS).join(feats.select("time", "obv", "ad"), on="time", how="left")
                .sort("time").tail(W + 1))
        offset = before.height - keep.height
        complete = full and offset == 0
        if keep["obv"].null_count() or keep["ad"].null_count() or not (complete or keep.height == W + 1):
            self._by.pop(symbol, None)
            return
        if t_star is not None:
            self._pending[symbol] = (keep, offset, complete)
            return
        newest = feats.filter(pl.col("time") == keep["time"][-1])["created_timestamp"]  # up to date: final
        if keep.height and newest.len() == 1:
            self._by[symbol] = _Tail(keep, offset, complete, keep.row(-1), newest[0])

    def stage_rows(self, rows: pl.DataFrame) -> None:
        """The feature rows about to be written (from each changed symbol's ``t*`` on)."""
        self._rows = rows

    def commit(self, token=None) -> None:
        """The writes succeeded: move every pending tail forward by its new rows. ``token``: the
        store's write token read after those writes, under the same lock hold."""
        pending, rows = self._pending, self._rows
        self._pending, self._rows = {}, None
        if rows is None or rows.height == 0:
            for s in pending:
                self._by.pop(s, None)
            self.token = token
            return
        self.token = token
        if not pending:
            return
        new = rows.filter(pl.col("symbol").is_in(list(pending))).select(
            "symbol", pl.lit(self.tf, pl.String).alias("timeframe"), *_BARS[2:], "obv", "ad").sort("symbol", "time")
        created = rows["created_timestamp"][0]  # one stamp for every row of a call
        added = dict(new.group_by("symbol").len().iter_rows())
        stacked = pl.concat([*(p[0] for p in pending.values()), new], rechunk=False)
        kept = stacked.group_by("symbol", maintain_order=True).tail(W + 1)
        lasts = {r[0]: r for r in kept.group_by("symbol", maintain_order=True).last().iter_rows()}
        for s in pending:
            self._by.pop(s, None)  # replaced below if it got rows
        for (s,), part in kept.partition_by("symbol", as_dict=True).items():
            if s in added:
                before, offset, complete = pending[s]
                dropped = before.height + added[s] - part.height
                self._by[s] = _Tail(part, offset + dropped, complete and dropped == 0, lasts[s], created)


def incremental_rows(store, tf: str, frame: pl.DataFrame,
                     tails: Tails | None = None) -> tuple[pl.DataFrame, dict[str, datetime]]:
    """Feature rows for the canonical bars ``frame`` (one timeframe ``tf``) from the stored history of
    ``store``: every row from each changed symbol's ``t*`` on, stamped ``created_timestamp`` = now,
    and ``{symbol: t*}``. Symbols already up to date give no rows. Reads only; writes nothing.

    ``tails``: warm state (:class:`Tails`) of a long-running writer: checked against the store,
    used where it covers the new bars, and staged to move forward; the caller calls
    ``tails.commit()`` after its writes succeed, ``tails.forget(symbols)`` if they fail.

    Raises StoreError when the stored obv/ad the carry needs is missing (run ``mt5lab build``).
    """
    symbols = sorted(frame["symbol"].unique().to_list())
    plans: dict[str, tuple] = {}
    windows: list[pl.DataFrame] = []
    todo, full = symbols, False
    if tails is not None:
        tails.forget([])  # nothing pending from an earlier call
        tails.verify(store)
        fresh = tails.drop_resent(frame)
        firsts = dict(fresh.group_by("symbol").agg(pl.col("time").min()).iter_rows())
        todo, tail_rows = [], []
        for s in symbols:
            if s not in firsts and s in tails:  # only an unchanged re-send of the tail's newest bar
                continue
            p = tails.plan(s, firsts[s]) if s in firsts else None
            if p is None:
                todo.append(s)
            else:
                plans[s] = p
                tail_rows.append(p[1])
        if plans:  # each fast symbol's tail rows, then its new bars: in time order per symbol
            windows += [pl.concat(tail_rows).select(_BARS),
                        fresh.filter(pl.col("symbol").is_in(list(plans))).select(_BARS)]
    new_by = frame.partition_by("symbol", as_dict=True) if todo else {}
    while todo:
        bars, feats = _history(store, tf, todo, frame["time"].min(), full)
        bars_by = bars.partition_by("symbol", as_dict=True)
        feats_by = feats.partition_by("symbol", as_dict=True)
        more = []
        for s in todo:
            f = feats_by.get((s,), feats.clear())
            p, merged = _plan(new_by[(s,)], bars_by.get((s,), bars.clear()), f, full)
            if p == "more":
                more.append(s)
                continue
            if p is not None:
                plans[s] = p
                windows.append(p[1])
            if tails is not None:
                tails.stage(s, p, merged, f, full)
        todo, full = more, True
    if not plans:
        return pl.DataFrame(), {}
    out = compute_features(pl.concat(windows), tf, carry={s: p[2] for s, p in plans.items() if p[2]},
                           history_offset={s: p[3] for s, p in plans.items()},
                           since={s: p[0] for s, p in plans.items()})  # each symbol's rows from t* on
    out = out.insert_column(3, pl.lit(now_utc(), pl.Datetime("us", "UTC")).alias("created_timestamp"))
    if tails is not None:
        tails.stage_rows(out)
    return out, {s: p[0] for s, p in plans.items()}
