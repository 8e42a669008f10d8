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
"""

from __future__ import annotations

import numpy as np
import polars as pl
import talib
from talib import _ta_lib as ta  # the Cython functions, without the pandas/polars dispatch wrapper

from mt5lab.bars.schema import to_polars
from mt5lab.catalog import BY_NAME, FEATURES, Domain, bar_duration

_SMA = talib.MA_Type.SMA
_PASSTHROUGH = ("open", "high", "low", "close", "tick_volume", "real_volume", "spread")
_COMPUTED = [f for f in FEATURES if f.name not in _PASSTHROUGH]
ROUNDING = 1e-9
"""Largest excursion past a closed domain bound treated as float round-off (and clipped), relative
to ``max(1, |bound|, width of a bounded domain)``: 1e-7 for [0, 100]. Measured excursions are
~1e-13 (STOCH's running sums); a real bug or an invalid bar lands further out and is nulled."""
_RSI_QUIET = BY_NAME["rsi_14"].warmup


def effective_volume(tick_volume: np.ndarray, real_volume: np.ndarray) -> np.ndarray:
    """``real_volume`` where present and > 0, else ``tick_volume`` (FX brokers report 0)."""
    rv = np.nan_to_num(real_volume.astype(np.float64), nan=0.0)
    return np.where(rv > 0, rv, tick_volume.astype(np.float64))


def obv_from(close: np.ndarray, vol: np.ndarray, start: float | None = None,
             prev_close: float | None = None) -> np.ndarray:
    """TA-Lib's OBV, bit for bit, optionally continuing a carried state.

    ``start`` and ``prev_close`` are the OBV and the close of the bar *before* ``close[0]`` (OBV's
    state is both: the first bar's step needs the previous close). The same float operations in the
    same order as a run over the whole series, so a continued run equals it bit for bit.
    """
    step = np.zeros_like(vol)
    step[1:] = np.sign(np.diff(close)) * vol[1:]
    if start is None:
        step[0] = vol[0]
    else:
        step[0] = start + np.sign(close[0] - prev_close) * vol[0]
    return np.cumsum(step)


def ad_from(high, low, close, vol, start: float = 0.0) -> np.ndarray:
    """TA-Lib's AD, bit for bit (same operations, same order), optionally from a carried value."""
    rng = high - low
    with np.errstate(divide="ignore", invalid="ignore"):
        step = np.where(rng > 0, (((close - low) - (high - close)) / rng) * vol, 0.0)
    acc = np.empty(len(step) + 1)
    acc[0] = start
    acc[1:] = step
    return np.cumsum(acc)[1:]


def _any_in_window(flag: np.ndarray, n: int) -> np.ndarray:
    """``True`` at ``i`` where any of ``flag[i-n+1 .. i]`` is (a shorter window at the start)."""
    cs = np.concatenate(([0], np.cumsum(flag, dtype=np.int64)))
    end = np.arange(1, len(flag) + 1)
    return cs[end] - cs[np.maximum(end - n, 0)] > 0


def _undefined(h, lo, c, vol) -> dict[str, np.ndarray]:
    """Rows (of one symbol) where a TA-Lib function has a 0/0 that it reports as 0.0 (TA-Lib 0.8).

    * ``STOCH(h, l, c, 14, 3, SMA, 3, SMA)``: fast %K = (c - LL) / ((HH - LL) / 100) with HH, LL the
      highest high and lowest low of 14 bars; TA-Lib writes 0 when ``(HH - LL) / 100 == 0`` (all 14
      bars at one price). Slow %K averages 3 fast %K, slow %D 3 slow %K (5 fast %K): a mean that
      contains a 0/0 is itself undefined.
    * ``MFI(h, l, c, vol, 14)``: 100 * pos / (pos + neg) over the money flows ``tp * vol`` of 14 bars
      (``tp = (h + l + c) / 3``); a bar has no flow when ``tp`` is unchanged (TA-Lib's tie:
      ``|tp - tp_prev| <= 1e-14 * (|tp| + |tp_prev|)``) or ``tp * vol == 0``. 14 bars without a flow:
      0/0, reported as 0.
    * ``RSI(close, 14)``: 100 * G / (G + L), G and L Wilder averages of gains and losses; 0 when
      ``G + L == 0`` (no change since the first bar). A change older than the catalog's warm-up of
      ``rsi_14`` weighs less than the warm-up tolerance (the rule that makes a value depend on the
      last ``warmup`` bars only), so a close unchanged over the last ``warmup`` changes is 0/0 too:
      what TA-Lib would then show is the ratio of two remainders of long-gone moves.
    * ``NATR(h, l, c, 14)`` = 100 * ATR / close and ``ROC(close, 10)`` = 100 * (c / c[-10] - 1):
      TA-Lib writes 0 for a zero divisor (a zero price: never on valid bars).

    Not nulled, by definition: ``AD``/``ADOSC`` add nothing for a bar with high == low (TA-Lib's
    rule, kept bit for bit so that ``ad`` carries exactly), and ``CDLDOJI`` calls a frozen bar a doji
    (body 0 <= 10 % of an average range of 0 is a comparison, not a ratio). The other features' 0/0s
    (bar shares, ``bb_width_20``, ``log_return_1``, ...) come out as NaN or inf and fall under the
    non-finite rule.
    """
    fast_undef = (ta.MAX(h, 14) - ta.MIN(lo, 14)) / 100.0 == 0.0  # NaN (first 13 bars) -> False
    tp = (h + lo + c) / 3.0  # TA-Lib's typical price, same operations in the same order
    flow = np.zeros(len(c), dtype=bool)
    dtp = tp[1:] - tp[:-1]
    flow[1:] = ~(np.abs(dtp) <= 1e-14 * (np.abs(tp[1:]) + np.abs(tp[:-1]))) & (tp[1:] * vol[1:] != 0)
    changed = np.zeros(len(c), dtype=bool)
    changed[1:] = c[1:] != c[:-1]
    k_undef = _any_in_window(fast_undef, 3)
    prev10 = np.full(len(c), np.nan)
    prev10[10:] = c[:-10]
    return {
        "stoch_k": k_undef,
        "stoch_d": _any_in_window(k_undef, 3),
        "mfi_14": ~_any_in_window(flow, 14),
        "rsi_14": ~_any_in_window(changed, _RSI_QUIET),
        "natr_14": c == 0.0,
        "roc_10": prev10 == 0.0,
    }


def _enforce_domain(a: np.ndarray, d: Domain) -> None:
    """In place: non-finite -> NaN; round-off past a closed bound -> the bound; else outside -> NaN."""
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


def _one_symbol(o, h, lo, c, vol, out: dict[str, np.ndarray], sl: slice, carry=None) -> None:
    """Fill ``out[name][sl]`` for one symbol. ``carry``: (obv, ad, close) of the bar before this slice."""
    w = out
    for n in (5, 10, 20, 50, 200):
        w[f"sma_{n}"][sl] = ta.SMA(c, n)
    for n in (12, 26, 50):
        w[f"ema_{n}"][sl] = ta.EMA(c, n)
    w["rsi_14"][sl] = ta.RSI(c, 14)
    w["macd"][sl], w["macd_signal"][sl], w["macd_hist"][sl] = ta.MACD(c, 12, 26, 9)
    w["stoch_k"][sl], w["stoch_d"][sl] = ta.STOCH(h, lo, c, 14, 3, _SMA, 3, _SMA)
    w["roc_10"][sl] = ta.ROC(c, 10)
    w["atr_14"][sl] = ta.ATR(h, lo, c, 14)
    w["natr_14"][sl] = ta.NATR(h, lo, c, 14)
    up, mid, dn = ta.BBANDS(c, 20, 2.0, 2.0, _SMA)
    w["bb_upper_20"][sl], w["bb_middle_20"][sl], w["bb_lower_20"][sl] = up, mid, dn
    with np.errstate(divide="ignore", invalid="ignore"):
        w["bb_width_20"][sl] = (up - dn) / mid
    w["stddev_20"][sl] = ta.STDDEV(c, 20, 1.0)
    if carry is None:
        w["obv"][sl] = obv_from(c, vol)
        w["ad"][sl] = ad_from(h, lo, c, vol)
    else:
        if len(carry) != 3:
            raise ValueError("carry must be (obv, ad, close) of the bar before the first given bar")
        obv0, ad0, close0 = carry
        w["obv"][sl] = obv_from(c, vol, obv0, close0)
        w["ad"][sl] = ad_from(h, lo, c, vol, ad0)
    w["adosc"][sl] = ta.ADOSC(h, lo, c, vol, 3, 10)
    w["mfi_14"][sl] = ta.MFI(h, lo, c, vol, 14)
    w["volume_sma_20"][sl] = ta.SMA(vol, 20)
    w["cdl_doji"][sl] = ta.CDLDOJI(o, h, lo, c)
    # TA-Lib grades an engulfing whose bodies share an end (open == previous close, common in FX) as
    # +-80; the catalog's domain is -100, 0 or 100, so only the direction is kept.
    w["cdl_engulfing"][sl] = np.sign(ta.CDLENGULFING(o, h, lo, c)) * 100
    for name, undefined in _undefined(h, lo, c, vol).items():
        w[name][sl][undefined] = np.nan


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


def compute_features(bars, timeframe: str = "D1", *, carry: dict | None = None,
                     history_offset: dict | None = None) -> pl.DataFrame:
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
    sym = df["symbol"].to_numpy()
    # Group rows by symbol, keeping each symbol's input order (stable sort), then restore order.
    order = np.argsort(df["symbol"].rank("dense").to_numpy(), kind="stable")
    sym_sorted = sym[order]
    cut = np.flatnonzero(sym_sorted[1:] != sym_sorted[:-1]) + 1
    starts = np.concatenate(([0], cut))
    ends = np.concatenate((cut, [n]))

    def col(name, dtype=np.float64):
        return np.ascontiguousarray(df[name].to_numpy()[order].astype(dtype))

    o, h, lo, c = col("open"), col("high"), col("low"), col("close")
    tv = df["tick_volume"].fill_null(0).to_numpy()[order]
    rv = df["real_volume"].fill_null(0).to_numpy()[order]
    vol = np.ascontiguousarray(effective_volume(tv, rv))

    out = {f.name: np.empty(n) for f in _COMPUTED}  # every slot is written below
    for s, e in zip(starts, ends, strict=True):
        sl = slice(s, e)
        cs = carry.get(sym_sorted[s]) if carry else None
        _one_symbol(o[sl], h[sl], lo[sl], c[sl], vol[sl], out, sl, cs)
    _price_action(o, h, lo, c, out, starts)

    for f in _COMPUTED:
        _enforce_domain(out[f.name], f.domain)
    # Warm-up: null the first `warmup` bars of each symbol (counted from its true first bar).
    offsets = [history_offset.get(sym_sorted[s], 0) if history_offset else 0 for s in starts]
    for f in _COMPUTED:
        if f.warmup > 0:
            a = out[f.name]
            for s, e, k in zip(starts, ends, offsets, strict=True):
                if f.warmup > k:
                    a[s:min(e, s + f.warmup - k)] = np.nan

    identity = bool((np.diff(order) == 1).all())
    if not identity:
        inv = np.empty(n, dtype=np.int64)
        inv[order] = np.arange(n)
    cols: list[pl.Series] = [
        df["symbol"],
        df["time"].alias("time"),
        (df["time"] + step).alias("event_timestamp"),
    ]
    for f in FEATURES:
        if f.name in _PASSTHROUGH:
            s = df[f.name].cast(pl.Float64 if f.dtype == "Float64" else pl.Int64)
        else:
            vals = out[f.name] if identity else out[f.name][inv]
            s = pl.Series(f.name, vals, dtype=pl.Float64, nan_to_null=True)
            if f.dtype == "Int64":
                s = s.cast(pl.Int64)
        cols.append(s.alias(f.name))
    return pl.DataFrame(cols)


def _empty(df: pl.DataFrame) -> pl.DataFrame:
    schema = {"symbol": pl.String, "time": pl.Datetime("us", "UTC"),
              "event_timestamp": pl.Datetime("us", "UTC")}
    schema |= {f.name: (pl.Float64 if f.dtype == "Float64" else pl.Int64) for f in FEATURES}
    return pl.DataFrame(schema=schema)
