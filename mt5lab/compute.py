"""Compute the catalog's 42 features with TA-Lib: one pass per symbol over contiguous numpy arrays.

Look-ahead: every feature of a bar uses that bar and earlier bars only, and is stamped with
``event_timestamp = time + timeframe`` (the bar's close). Warm-up values are null (see
:mod:`mt5lab.catalog`). ``obv`` and ``ad`` are cumulative from the first bar given, or from a carried
state (``carry``) so that an incremental run equals a full rebuild exactly.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import talib

from mt5lab.bars import bar_duration, to_polars
from mt5lab.catalog import FEATURES

_SMA = talib.MA_Type.SMA
_FLOAT = [f.name for f in FEATURES if f.dtype == "Float64"]
_INT = [f.name for f in FEATURES if f.dtype == "Int64"]
_PASSTHROUGH = ("open", "high", "low", "close", "tick_volume", "real_volume", "spread")


def effective_volume(tick_volume: np.ndarray, real_volume: np.ndarray) -> np.ndarray:
    """``real_volume`` where present and > 0, else ``tick_volume`` (FX brokers report 0)."""
    rv = np.nan_to_num(real_volume.astype(np.float64), nan=0.0)
    return np.where(rv > 0, rv, tick_volume.astype(np.float64))


def obv_from(close: np.ndarray, vol: np.ndarray, start: float | None = None) -> np.ndarray:
    """TA-Lib's OBV, bit for bit, optionally continuing a carried value.

    ``start`` is the OBV of the bar *before* ``close[0]``; then ``close`` must begin with that bar.
    """
    step = np.zeros_like(vol)
    step[1:] = np.sign(np.diff(close)) * vol[1:]
    step[0] = vol[0] if start is None else start
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


def _one_symbol(o, h, lo, c, vol, out: dict[str, np.ndarray], sl: slice, carry=None) -> None:
    """Fill ``out[name][sl]`` for one symbol. ``carry``: (obv, ad) of the bar before this slice."""
    w = out
    for n in (5, 10, 20, 50, 200):
        w[f"sma_{n}"][sl] = talib.SMA(c, n)
    for n in (12, 26, 50):
        w[f"ema_{n}"][sl] = talib.EMA(c, n)
    w["rsi_14"][sl] = talib.RSI(c, 14)
    w["macd"][sl], w["macd_signal"][sl], w["macd_hist"][sl] = talib.MACD(c, 12, 26, 9)
    w["stoch_k"][sl], w["stoch_d"][sl] = talib.STOCH(h, lo, c, 14, 3, _SMA, 3, _SMA)
    w["roc_10"][sl] = talib.ROC(c, 10)
    w["atr_14"][sl] = talib.ATR(h, lo, c, 14)
    w["natr_14"][sl] = talib.NATR(h, lo, c, 14)
    up, mid, dn = talib.BBANDS(c, 20, 2.0, 2.0, _SMA)
    w["bb_upper_20"][sl], w["bb_middle_20"][sl], w["bb_lower_20"][sl] = up, mid, dn
    with np.errstate(divide="ignore", invalid="ignore"):
        w["bb_width_20"][sl] = (up - dn) / mid
    w["stddev_20"][sl] = talib.STDDEV(c, 20, 1.0)
    if carry is None:
        w["obv"][sl] = obv_from(c, vol)
        w["ad"][sl] = ad_from(h, lo, c, vol)
    else:
        obv0, ad0 = carry
        w["obv"][sl] = obv_from(c, vol, obv0)
        w["ad"][sl] = ad_from(h, lo, c, vol, ad0)
    w["adosc"][sl] = talib.ADOSC(h, lo, c, vol, 3, 10)
    w["mfi_14"][sl] = talib.MFI(h, lo, c, vol, 14)
    w["volume_sma_20"][sl] = talib.SMA(vol, 20)
    w["cdl_doji"][sl] = talib.CDLDOJI(o, h, lo, c)
    w["cdl_engulfing"][sl] = talib.CDLENGULFING(o, h, lo, c)


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
        carry: incremental mode: ``{symbol: (obv, ad)}`` of the bar *before* each symbol's first
            given bar, so that ``obv``/``ad`` continue the stored series exactly.
        history_offset: incremental mode: ``{symbol: k}`` says ``k`` stored bars precede the first
            given bar, so warm-up is counted from the symbol's true first bar. Only rows at least
            ``MAX_WARMUP`` deep into the given window then equal a full rebuild (within tolerance);
            the caller keeps just those.

    Returns:
        polars frame: ``symbol``, ``time``, ``event_timestamp`` and the 42 features, one row per
        input bar, in input order. Values within a feature's warm-up are null; ratios with a zero
        denominator are null, never inf.

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

    out = {name: np.full(n, np.nan) for name in _FLOAT + _INT if name not in _PASSTHROUGH}
    for s, e in zip(starts, ends, strict=True):
        sl = slice(s, e)
        cs = carry.get(sym_sorted[s]) if carry else None
        _one_symbol(o[sl], h[sl], lo[sl], c[sl], vol[sl], out, sl, cs)
    _price_action(o, h, lo, c, out, starts)

    lengths = ends - starts
    pos = np.arange(n) - np.repeat(starts, lengths)  # bar index within its symbol
    if history_offset:
        pos += np.repeat([history_offset.get(sym_sorted[s], 0) for s in starts], lengths)
    for f in FEATURES:
        if f.name in _PASSTHROUGH:
            continue
        a = out[f.name]
        a[~np.isfinite(a)] = np.nan
        if f.warmup > 0:
            a[pos < f.warmup] = np.nan

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
            s = pl.Series(f.name, out[f.name][inv], dtype=pl.Float64, nan_to_null=True)
            if f.dtype == "Int64":
                s = s.cast(pl.Int64)
        cols.append(s.alias(f.name))
    return pl.DataFrame(cols)


def _empty(df: pl.DataFrame) -> pl.DataFrame:
    schema = {"symbol": pl.String, "time": pl.Datetime("us", "UTC"),
              "event_timestamp": pl.Datetime("us", "UTC")}
    schema |= {f.name: (pl.Float64 if f.dtype == "Float64" else pl.Int64) for f in FEATURES}
    return pl.DataFrame(schema=schema)
