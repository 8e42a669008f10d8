"""Incremental update: new bars in, their features from the last W stored bars, offline and online
written in one step (under the store's writer lock).

Algorithm, per symbol (``W = catalog.MAX_WARMUP``):

1. Validate the new bars as ingest does, and refuse a bar that has not closed yet
   (``time + timeframe > now``): its features would leak the future into the online store.
2. Read the stored history back to at least ``W + 1`` bars before the first new bar (a bounded read,
   widened to the whole history when that is shorter), with the stored ``obv``/``ad`` over it.
3. ``t*`` = the earliest bar that is new, or differs from the stored bar at its time (a revision),
   or is stored without a feature row (an earlier run stopped between its writes). No ``t*``: the
   symbol is up to date, nothing is written offline (idempotent).
4. Window = the ``W`` bars before ``t*`` plus every bar from ``t*`` on (stored, revised, new);
   ``carry`` = ``(obv, ad, close)`` of the bar before the window, from the store. Features are
   computed on the window and kept from ``t*`` on: those rows are ``>= W`` bars deep, so they equal
   a full rebuild within ``WARMUP_TOLERANCE`` (prefix invariance), and ``obv``/``ad`` bit for bit.
   With ``<= W`` bars before ``t*`` the window is the whole history: exactly a rebuild.
5. Write bars, then feature rows (upserts; unchanged rows keep their ``created_timestamp``), then
   each symbol's newest row to the online store.

Revision policy: **recompute from there.** A bar older than the newest stored one (late,
out of order) or different from the stored bar at its time (a broker correction) is accepted;
every row from it to the end is recomputed (``obv``/``ad`` are cumulative, so the whole tail moves)
and the newest online row is rewritten. Re-sending identical bars changes nothing.

Look-ahead: a row's features use its bar and earlier bars only; forming bars are refused (1.).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import polars as pl

from mt5lab.bars import canonical
from mt5lab.catalog import MAX_WARMUP, TIMEFRAMES
from mt5lab.compute import compute_features
from mt5lab.errors import BarValidationError, StoreError
from mt5lab.storage import WriteResult
from mt5lab.storage.base import now_utc

W = MAX_WARMUP
_VALUES = ("open", "high", "low", "close", "tick_volume", "spread", "real_volume")


@dataclass
class UpdateResult:
    timeframe: str
    rows: int
    bars: WriteResult
    features: WriteResult
    recomputed_from: dict[str, datetime] = field(default_factory=dict)  # per changed symbol: t*
    online_symbols: int = 0
    report: object = None  # mt5lab.validate.ValidationReport

    def summary(self) -> str:
        return (f"{self.timeframe}: {self.rows} bars ({self.bars.inserted} new, {self.bars.updated} "
                f"revised, {self.bars.unchanged} unchanged); {self.features.changed} feature rows "
                f"written for {len(self.recomputed_from)} symbols; {self.online_symbols} online rows")


def _check_closed(frame: pl.DataFrame, tf: str, now: datetime, source: str) -> None:
    closes = frame["time"] + TIMEFRAMES[tf]
    bad = (closes > now).arg_true()
    if bad.len():
        i = int(bad[0])
        raise BarValidationError(
            source, i + 1, "bar not closed yet",
            f"symbol={frame['symbol'][i]!r} time={frame['time'][i]} closes at {closes[i]}, after now "
            f"({now:%Y-%m-%d %H:%M:%S} UTC); drop the forming bar (MT5 copy_rates position 0)")


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


def _feature_rows(store, tf: str, frame: pl.DataFrame) -> tuple[pl.DataFrame, dict]:
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


def update(new_bars, *, profile=None, timeframe: str | None = None, source: str = "<frame>",
           calendar: str | None = None, now: datetime | None = None, online: bool = True,
           store=None) -> UpdateResult:
    """Ingest ``new_bars`` incrementally: validate, compute their features from the stored history,
    write bars and features offline and each symbol's newest row online, under one lock.

    Args:
        new_bars: polars or pandas frame of canonical bars (one timeframe).
        profile: profile name or :class:`~mt5lab.config.Profile` (default: ``MT5LAB_PROFILE``).
        timeframe: the bars' timeframe when the frame has no ``timeframe`` column.
        source: name used in validation errors.
        calendar: market calendar for the gap report (default: the samples' calendar, else fx).
        now: refuse bars closing after this instant (default: the wall clock).
        online: also write the newest rows to the online store (needs ``mt5lab apply`` once).
        store: an open offline store (default: the profile's).
    """
    from mt5lab.freshness import calendar_for
    from mt5lab.online_reader import reader
    from mt5lab.storage import open_store
    from mt5lab.store import resolve
    from mt5lab.validate import validate_bars

    prof = resolve(profile)
    store = store or open_store(prof)
    frame = canonical(new_bars, timeframe)
    tfs = frame["timeframe"].unique().to_list()
    tf = tfs[0] if len(tfs) == 1 else (timeframe or "D1").upper()
    cal = calendar or calendar_for(frame["symbol"].unique().to_list())
    report = validate_bars(frame, source=source, calendar=cal)  # raises on mixed timeframes too
    if frame.height == 0:
        return UpdateResult(tf, 0, WriteResult(0, 0, 0), WriteResult(0, 0, 0), report=report)
    if now is not None and (now.tzinfo is None or now.utcoffset() is None):
        raise ValueError(f"now must be timezone-aware, got naive {now!r}")
    _check_closed(frame, tf, now or datetime.now(UTC), source)
    tables = reader(prof, tf).tables if online else None  # fails before any write if not applied
    with store.lock():
        rows, starts = _feature_rows(store, tf, frame)
        bars_res = store.write_bars(frame)
        feat_res = store.write_features(tf, rows) if rows.height else WriteResult(0, 0, 0)
        n_online = 0
        if tables is not None:
            symbols = frame["symbol"].unique().to_list()
            latest = rows.group_by("symbol").agg(pl.all().sort_by("time").last()) if rows.height else None
            rest = [s for s in symbols if s not in starts]
            parts = [p for p in (latest, store.latest_features(tf, rest) if rest else None)
                     if p is not None and p.height]
            if parts:
                cols = ["symbol", "event_timestamp", "created_timestamp", *tables.feature_names]
                n_online = tables.write_latest(pl.concat([p.select(cols) for p in parts]))
    return UpdateResult(tf, frame.height, bars_res, feat_res, starts, n_online, report)
