"""Compute the catalog's 42 features with TA-Lib: one pass per symbol over contiguous numpy arrays.

Look-ahead: every feature of a bar uses that bar and earlier bars only, and is stamped with
``event_timestamp = time + timeframe`` (the bar's close). Warm-up values are null (see
:mod:`mt5lab.catalog`). ``obv`` and ``ad`` are cumulative from the first bar given, or from a carried
state (``carry``) so that an incremental run equals a full rebuild exactly.

Domains (``Feature.domain`` in :mod:`mt5lab.catalog`), one rule for every computed feature:

* a non-finite result (inf, or NaN from 0/0) is null;
* a 0/0 that TA-Lib reports as a number is null: RSI, STOCH, MFI, NATR and ROC each have such a
  branch, detected from the inputs by :func:`_undefined` (see there for each condition);
* a value past a closed bound by float round-off (at most :data:`ROUNDING` of the bound's scale, e.g.
  STOCH's running sums leaving -4.7e-14 once fast %K has been 0 for a while) is clipped onto the
  bound; anything further out, or on the wrong side of an open bound, cannot come from valid bars
  and is null (:func:`_enforce_domain`).

The bar columns pass through unchanged (their domain is the validator's job).

Speed: symbols stay contiguous (no sort when the input is grouped, the usual case); what depends on
a row and its predecessor only is computed for all rows at once (:func:`_rowwise`,
:func:`_price_action`); the per-symbol part (TA-Lib, which releases the GIL, and the windows of
:func:`_undefined`) runs in two threads from :data:`PARALLEL_MIN_ROWS` bars on; the domain check
is two reductions per feature when nothing is out of its domain. Every value is bit for bit what
one thread computing one symbol at a time gives (tests/test_warmup.py).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl
import talib
from talib import _ta_lib as ta

from mt5lab.bars.schema import to_polars
from mt5lab.catalog import FEATURES, Domain, bar_duration
from mt5lab.features.undefined import null_undefined, null_warmups


def _raw(name: str):
    """The Cython function itself: ``import talib`` wraps each one for pandas/polars dispatch (two
    ``isinstance`` scans of the arguments per call, a quarter of the time on short series)."""
    f = getattr(ta, name)
    return getattr(f, "__wrapped__", f)


(_SMA_F, _EMA, _RSI, _MACD, _STOCH, _ROC, _ATR, _NATR, _BBANDS, _STDDEV, _ADOSC, _MFI, _CDLDOJI,
 _CDLENGULFING, _MAX, _MIN) = map(_raw, ("SMA", "EMA", "RSI", "MACD", "STOCH", "ROC", "ATR", "NATR", "BBANDS",
                                        "STDDEV", "ADOSC", "MFI", "CDLDOJI", "CDLENGULFING", "MAX", "MIN"))
_SMA = talib.MA_Type.SMA
_PASSTHROUGH = ("open", "high", "low", "close", "tick_volume", "real_volume", "spread")
_COMPUTED = [f for f in FEATURES if f.name not in _PASSTHROUGH]
_WARMUPS = [(f.name, f.warmup) for f in _COMPUTED if f.warmup > 0]
PARALLEL_MIN_ROWS = 200_000
"""Below this many bars one thread computes every symbol (a pool costs more than it saves)."""
MAX_THREADS = 2
"""At most this many threads: the GIL-held part of each symbol (argument checks, slicing) limits
what more threads could add."""
ROUNDING = 1e-9
"""Largest excursion past a closed domain bound treated as float round-off (and clipped), relative
to ``max(1, |bound|, width of a bounded domain)``: 1e-7 for [0, 100]. Measured excursions are
~1e-13 (STOCH's running sums); a real bug or an invalid bar lands further out and is nulled."""


def effective_volume(tick_volume: np.ndarray, real_volume: np.ndarray) -> np.ndarray:
    """``real_volume`` where present and > 0, else ``tick_volume`` (FX brokers report 0)."""
    rv = np.nan_to_num(real_volume.astype(np.float64), nan=0.0)
    return np.where(rv > 0, rv, tick_volume.astype(np.float64))


def _rowwise(o, h, lo, c, vol) -> dict[str, np.ndarray | None]:
    """The parts of :func:`_undefined`, ``obv`` and ``ad`` that depend on a row and its predecessor
    only, for all rows at once (elementwise, so each value is bit for bit what a per-symbol pass
    computes); a symbol's first row gets its own value in :func:`_one_symbol`."""
    tp = (h + lo + c) / 3.0  # TA-Lib's typical price, same operations in the same order
    n = len(c)
    flow = np.zeros(n, dtype=bool)
    flow[1:] = ~(np.abs(tp[1:] - tp[:-1]) <= 1e-14 * (np.abs(tp[1:]) + np.abs(tp[:-1]))) & (tp[1:] * vol[1:] != 0)
    changed = np.zeros(n, dtype=bool)
    np.not_equal(c[1:], c[:-1], out=changed[1:])
    zero = c == 0.0
    obv = np.empty(n)
    obv[1:] = np.sign(np.diff(c)) * vol[1:]  # obv_from's step
    rng = h - lo
    with np.errstate(divide="ignore", invalid="ignore"):
        ad = np.where(rng > 0, (((c - lo) - (h - c)) / rng) * vol, 0.0)  # ad_from's step
    return {"flow": flow, "changed": changed, "zero_price": zero if zero.any() else None,
            "obv_step": obv, "ad_step": ad}


def _enforce_domain(a: np.ndarray, d: Domain) -> None:
    """In place: non-finite -> NaN; round-off past a closed bound -> the bound; else outside -> NaN.

    The usual case (every value finite and inside) is found with two reductions and left alone."""
    if not d.values:
        lo, hi = np.fmin.reduce(a), np.fmax.reduce(a)  # NaN only if every value is NaN
        if np.isnan(lo) or (-np.inf < lo and hi < np.inf
                            and (d.lo is None or (lo > d.lo if d.lo_open else lo >= d.lo))
                            and (d.hi is None or hi <= d.hi)):
            return
    a[~np.isfinite(a)] = np.nan
    if d.values:
        a[~np.isin(a, d.values) & ~np.isnan(a)] = np.nan
        return
    bounds = [abs(b) for b in (d.lo, d.hi) if b is not None]
    width = d.hi - d.lo if d.lo is not None and d.hi is not None else 0.0
    slack = ROUNDING * max(1.0, width, *bounds)
    if d.lo is not None:
        if d.lo_open:
            a[a <= d.lo] = np.nan  # no bound to clip onto
        else:
            a[(a < d.lo) & (a >= d.lo - slack)] = d.lo
            a[a < d.lo] = np.nan
    if d.hi is not None:
        a[(a > d.hi) & (a <= d.hi + slack)] = d.hi
        a[a > d.hi] = np.nan


def _one_symbol(o, h, lo, c, vol, w: dict[str, np.ndarray], sl: slice, g: dict, carry, skip: int) -> None:
    """Fill ``w[name][sl]`` for one symbol (``o`` ... ``vol`` are its slices). ``carry``: (obv, ad,
    close) of the bar before this slice, or None. ``skip``: stored bars before the slice (warm-up is
    counted from the symbol's true first bar). Writes only ``w[...][sl]`` and ``g[...][sl]``: symbols
    can run in parallel threads (TA-Lib releases the GIL). TA-Lib's hidden 0/0s and the warm-ups are
    nulled afterwards for all symbols at once (:mod:`mt5lab.features.undefined`)."""
    for n in (5, 10, 20, 50, 200):
        w[f"sma_{n}"][sl] = _SMA_F(c, n)
    for n in (12, 26, 50):
        w[f"ema_{n}"][sl] = _EMA(c, n)
    w["rsi_14"][sl] = _RSI(c, 14)
    w["macd"][sl], w["macd_signal"][sl], w["macd_hist"][sl] = _MACD(c, 12, 26, 9)
    w["stoch_k"][sl], w["stoch_d"][sl] = _STOCH(h, lo, c, 14, 3, _SMA, 3, _SMA)
    w["roc_10"][sl] = _ROC(c, 10)
    w["atr_14"][sl] = _ATR(h, lo, c, 14)
    w["natr_14"][sl] = _NATR(h, lo, c, 14)
    up, mid, dn = _BBANDS(c, 20, 2.0, 2.0, _SMA)
    w["bb_upper_20"][sl], w["bb_middle_20"][sl], w["bb_lower_20"][sl] = up, mid, dn
    np.divide(up - dn, mid, out=w["bb_width_20"][sl])  # 0/0 -> NaN: the caller silences numpy
    w["stddev_20"][sl] = _STDDEV(c, 20, 1.0)
    # TA-Lib's OBV and AD, bit for bit (same operations, same order), continued from ``carry``:
    # OBV's first step needs the previous close; AD's running sum starts at the carried value.
    step = g["obv_step"][sl]
    if carry is None:
        step[0] = vol[0]
        ad0 = 0.0
    else:
        if len(carry) != 3:
            raise ValueError("carry must be (obv, ad, close) of the bar before the first given bar")
        obv0, ad0, close0 = carry
        step[0] = obv0 + np.sign(c[0] - close0) * vol[0]
    np.cumsum(step, out=w["obv"][sl])
    acc = np.empty(len(c) + 1)
    acc[0] = ad0
    acc[1:] = g["ad_step"][sl]
    w["ad"][sl] = np.cumsum(acc, out=acc)[1:]
    w["adosc"][sl] = _ADOSC(h, lo, c, vol, 3, 10)
    w["mfi_14"][sl] = _MFI(h, lo, c, vol, 14)
    w["volume_sma_20"][sl] = _SMA_F(vol, 20)
    w["cdl_doji"][sl] = _CDLDOJI(o, h, lo, c)
    # TA-Lib grades an engulfing whose bodies share an end (open == previous close, common in FX) as
    # +-80; the catalog's domain is -100, 0 or 100, so only the direction is kept.
    w["cdl_engulfing"][sl] = np.sign(_CDLENGULFING(o, h, lo, c)) * 100
    g["range14"][sl] = (_MAX(h, 14) - _MIN(lo, 14)) / 100.0  # STOCH's divisor (null_undefined)


def _price_action(o, h, lo, c, out, starts) -> None:
    """Vectorised over all symbols; ``starts`` are each symbol's first row (no previous close)."""
    rng = h - lo
    with np.errstate(divide="ignore", invalid="ignore"):
        lr = np.empty_like(c)
        lr[1:] = np.log(c[1:] / c[:-1])
        lr[starts] = np.nan
        out["log_return_1"] = lr
        out["hl_range"] = rng / c
        out["co_ratio"] = (c - o) / o
        out["body_ratio"] = np.abs(c - o) / rng
        out["upper_shadow"] = (h - np.maximum(o, c)) / rng
        out["lower_shadow"] = (np.minimum(o, c) - lo) / rng


def _groups(symbol: pl.Series) -> tuple[np.ndarray | None, np.ndarray, np.ndarray, list]:
    """``(order, starts, ends, names)``: rows grouped by symbol, each symbol's rows in input order.
    ``order`` is None when every symbol's rows are already contiguous (the usual case: no sort)."""
    runs = symbol.rle()
    names = runs.struct.field("value")
    if names.n_unique() == names.len():
        ends = np.cumsum(runs.struct.field("len").to_numpy())
        return None, ends - runs.struct.field("len").to_numpy(), ends, names.to_list()
    order = np.argsort(symbol.rank("dense").to_numpy(), kind="stable")
    sym_sorted = symbol.gather(order)
    runs = sym_sorted.rle()
    ends = np.cumsum(runs.struct.field("len").to_numpy())
    return order, ends - runs.struct.field("len").to_numpy(), ends, runs.struct.field("value").to_list()


def _run_parallel(jobs: list, work, threads: int, weight=lambda job: job[1] - job[0]) -> None:
    """``work(share)`` for contiguous shares of ``jobs`` of about equal ``weight`` (rows:
    ``job[1] - job[0]``), one share per thread; exceptions propagate."""
    if threads <= 1 or len(jobs) < 2:
        work(jobs)
        return
    total = sum(weight(j) for j in jobs)
    shares, cur, size = [], [], 0
    for j in jobs:
        cur.append(j)
        size += weight(j)
        if size >= total * (len(shares) + 1) / threads and len(shares) < threads - 1:
            shares.append(cur)
            cur = []
    shares.append(cur)

    with ThreadPoolExecutor(len(shares)) as pool:
        for f in [pool.submit(work, s) for s in shares if s]:
            f.result()


def compute_threads(rows: int) -> int:
    """Threads used for ``rows`` bars: one below :data:`PARALLEL_MIN_ROWS`, else up to the CPUs
    this process may run on (at most :data:`MAX_THREADS`)."""
    if rows < PARALLEL_MIN_ROWS:
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_THREADS))


def compute_features(bars, timeframe: str = "D1", *, carry: dict | None = None,
                     history_offset: dict | None = None, threads: int | None = None,
                     since: dict | None = None) -> pl.DataFrame:
    """Compute the 42 catalog features for ``bars`` (one or many symbols, one timeframe).

    Args:
        bars: polars or pandas frame in the canonical bar schema (``symbol``, ``time`` (tz-aware
            UTC), ``open high low close tick_volume real_volume spread``), each symbol's bars in
            time order.
        timeframe: the bars' timeframe; ``event_timestamp = time + timeframe``.
        carry: incremental mode: ``{symbol: (obv, ad, close)}`` of the bar *before* each symbol's
            first given bar (OBV's step needs that close), so that ``obv``/``ad`` continue the stored
            series bit for bit.
        history_offset: incremental mode: ``{symbol: k}`` says ``k`` stored bars precede the first
            given bar, so warm-up is counted from the symbol's true first bar. Only rows at least
            ``MAX_WARMUP`` deep into the given window then equal a full rebuild (within tolerance);
            the caller keeps just those.
        threads: symbols are computed in this many threads (TA-Lib releases the GIL); default
            :func:`compute_threads`. The values do not depend on it (each symbol is one thread's).
        since: ``{symbol: datetime}``: return only that symbol's rows with ``time >= since`` (the
            earlier rows are its warm-up: computed, then dropped before the frame is built, which
            is most of the cost for a live update's short windows). Other symbols: every row.

    Returns:
        polars frame: ``symbol``, ``time``, ``event_timestamp`` and the 42 features, one row per
        input bar, in input order. Values within a feature's warm-up are null; every computed value
        lies in its catalog ``Feature.domain`` (e.g. [0, 100] for ``rsi_14``, ``stoch_k``,
        ``stoch_d``, ``mfi_14``); a 0/0 (also one TA-Lib reports as 0) or a non-finite result is
        null, never inf or a stand-in 0. The bar columns are passed through as given.

    Look-ahead: none. Row ``i`` depends on rows ``<= i`` of the same symbol only.
    """
    df = to_polars(bars)
    step = bar_duration(timeframe)
    n = df.height
    if n == 0:
        return _empty(df)
    order, starts, ends, names = _groups(df["symbol"])

    def col(name):
        a = df[name].to_numpy()
        return np.ascontiguousarray((a if order is None else a[order]).astype(np.float64, copy=False))

    o, h, lo, c = col("open"), col("high"), col("low"), col("close")
    tv = df["tick_volume"].fill_null(0).to_numpy()
    rv = df["real_volume"].fill_null(0).to_numpy()
    if order is not None:
        tv, rv = tv[order], rv[order]
    vol = np.ascontiguousarray(effective_volume(tv, rv))

    out = {f.name: np.empty(n) for f in _COMPUTED}  # every slot is written below
    _price_action(o, h, lo, c, out, starts)
    g = _rowwise(o, h, lo, c, vol)
    jobs = [(int(s), int(e), carry.get(name) if carry else None,
             history_offset.get(name, 0) if history_offset else 0)
            for s, e, name in zip(starts, ends, names, strict=True)]

    def work(share):
        with np.errstate(divide="ignore", invalid="ignore"):  # per thread: numpy's state is a contextvar
            for s, e, cs, k in share:
                sl = slice(s, e)
                _one_symbol(o[sl], h[sl], lo[sl], c[sl], vol[sl], out, sl, g, cs, k)

    nthreads = compute_threads(n) if threads is None else max(1, int(threads))
    g["range14"] = np.empty(n)
    _run_parallel(jobs, work, nthreads)
    lengths = np.asarray(ends, np.int64) - np.asarray(starts, np.int64)
    first = np.repeat(np.asarray(starts, np.int64), lengths)
    null_undefined(g, first, out)
    skips = np.repeat(np.array([j[3] for j in jobs], np.int64), lengths)
    null_warmups(out, first, skips, _WARMUPS)

    def domains(feats):
        for f in feats:
            _enforce_domain(out[f.name], f.domain)

    inv = None
    if since:  # rows kept, in input order; the domain rule is elementwise, so it can run after
        grouped = np.arange(n) if order is None else order
        t = df["time"].dt.cast_time_unit("us").to_physical().to_numpy()[grouped]
        cut = pl.Series([since.get(name) for name in names], dtype=pl.Datetime("us", "UTC"))
        cut = np.repeat(cut.to_physical().fill_null(np.iinfo(np.int64).min).to_numpy(), lengths)
        keep = t >= cut
        idx = grouped[keep]
        inv = np.argsort(idx, kind="stable")
        out = {name: a[keep] for name, a in out.items()}
        df = df[idx[inv]]
        if df.height == 0:
            return _empty(df)
    elif order is not None:
        inv = np.empty(n, dtype=np.int64)
        inv[order] = np.arange(n)
    _run_parallel(_COMPUTED, domains, nthreads, weight=lambda f: 1)

    feats = pl.DataFrame({f.name: out[f.name] if inv is None else out[f.name][inv] for f in _COMPUTED})
    feats = feats.select(pl.col(f.name).fill_nan(None).cast(pl.Int64 if f.dtype == "Int64" else pl.Float64)
                         for f in _COMPUTED)
    cols: list[pl.Series] = [
        df["symbol"],
        df["time"].alias("time"),
        (df["time"] + step).alias("event_timestamp"),
    ]
    for f in FEATURES:
        if f.name in _PASSTHROUGH:
            s = df[f.name].cast(pl.Float64 if f.dtype == "Float64" else pl.Int64)
        else:
            s = feats[f.name]
        cols.append(s.alias(f.name))
    return pl.DataFrame(cols)


def _empty(df: pl.DataFrame) -> pl.DataFrame:
    schema = {"symbol": pl.String, "time": pl.Datetime("us", "UTC"),
              "event_timestamp": pl.Datetime("us", "UTC")}
    schema |= {f.name: (pl.Float64 if f.dtype == "Float64" else pl.Int64) for f in FEATURES}
    return pl.DataFrame(schema=schema)
