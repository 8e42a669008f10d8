"""TA-Lib's hidden 0/0s and the catalog's warm-ups, nulled for all symbols of a computation at once.

:func:`mt5lab.features.compute.compute_features` runs TA-Lib per symbol; what this module does
depends on a row and a bounded window of its own symbol's earlier rows only, so it runs on the
whole grouped arrays in a fixed number of numpy operations, whatever the number of symbols (the
live feed computes 100 short windows per bar close: per-symbol masks cost more than TA-Lib there).

Arrays are in the computation's grouped order (each symbol's rows contiguous); ``first[i]`` is the
row index of row ``i``'s symbol's first row.
"""

from __future__ import annotations

import numpy as np

from mt5lab.catalog import BY_NAME

_RSI_QUIET = BY_NAME["rsi_14"].warmup


def window_any(flag: np.ndarray, n: int, first: np.ndarray) -> np.ndarray:
    """``True`` at ``i`` where any of ``flag[max(i - n + 1, first[i]) .. i]`` is: a window of ``n``
    rows that never reaches into the previous symbol (shorter at a symbol's start)."""
    cs = np.cumsum(flag, dtype=np.int64)
    lower = np.maximum(np.arange(len(flag)) - n, first - 1)  # the last row before the window
    before = np.where(lower >= 0, cs[np.maximum(lower, 0)], 0)
    return cs - before > 0


def null_undefined(g: dict[str, np.ndarray], first: np.ndarray, w: dict[str, np.ndarray]) -> None:
    """Null (in ``w[name]``) the rows where a TA-Lib function has a 0/0 that it reports as 0.0
    (TA-Lib 0.8). ``g`` holds the row-wise parts of :func:`mt5lab.features.compute._rowwise`
    (``flow``, ``changed``, ``zero_price``) and ``range14``, STOCH's divisor per row.

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
    starts = np.unique(first)
    k_undef = window_any(g["range14"] == 0.0, 3, first)  # NaN (first 13 bars) -> False
    flow, changed = g["flow"].copy(), g["changed"].copy()
    flow[starts] = changed[starts] = False  # no previous bar inside a symbol
    masks = {"stoch_k": k_undef, "stoch_d": window_any(k_undef, 3, first),
             "mfi_14": ~window_any(flow, 14, first), "rsi_14": ~window_any(changed, _RSI_QUIET, first)}
    zero = g["zero_price"]
    if zero is not None:  # some close is 0 (invalid bars): NATR and ROC divide by it
        masks["natr_14"] = zero
        roc = np.zeros(len(zero), dtype=bool)
        roc[10:] = zero[:-10]
        roc &= np.arange(len(zero)) - first >= 10
        masks["roc_10"] = roc
    for name, undefined in masks.items():
        if undefined.any():
            w[name][undefined] = np.nan


def null_warmups(w: dict[str, np.ndarray], first: np.ndarray, skips: np.ndarray,
                 warmups: list[tuple[str, int]]) -> None:
    """Null each feature's warm-up, counted from the symbol's true first bar: row ``i`` is
    ``i - first[i] + skips[i]`` bars deep (``skips``: stored bars before the window, per row)."""
    depth = np.arange(len(first)) - first + skips
    for name, warm in warmups:
        early = depth < warm
        if early.any():
            w[name][early] = np.nan
