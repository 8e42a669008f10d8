"""One figure per feature view, for one symbol's window (from :func:`mt5lab.research.explore.feature_window`).

The x axis is the bar open time (UTC), on calendar time or trading time (``axis``: ``auto`` is
trading time for intraday timeframes, see :mod:`mt5lab.plots.axis`); each plotted value is known at
that bar's close. ``gaps`` (from :func:`mt5lab.research.explore.window_gaps`) are shaded as in the
validation figure. Prices are in
the symbol's quote units, oscillators in their 0..100 scale, volumes in effective volume (real volume
where the source has it, else ticks).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from matplotlib.ticker import EngFormatter

from mt5lab.plots.axis import XAxis
from mt5lab.plots.quality import volume_panel


def _arr(df: pl.DataFrame, name: str) -> np.ndarray:
    return df[name].cast(pl.Float64).fill_null(float("nan")).to_numpy()


def _frame(nrows: int, ratios: list[float], title: str, height: float = 2.2):
    fig, axes = plt.subplots(nrows, 1, figsize=(13, 1.2 + height * sum(ratios)), sharex=True,
                             gridspec_kw={"height_ratios": ratios})
    axes = np.atleast_1d(axes)
    axes[0].set_title(title)
    return fig, axes


def _finish(fig, axes, xa: XAxis, gaps: pl.DataFrame | None = None) -> None:
    for k, a in enumerate(axes):
        xa.mark_gaps(a, gaps, label=k == 0)
        xa.format(a)
        if a.get_legend_handles_labels()[0]:
            a.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False,
                     borderaxespad=0)
    axes[-1].set_xlabel(f"{xa.label}; values known at the bar's close")
    fig.align_ylabels(axes)
    fig.tight_layout()


def _label(df: pl.DataFrame, symbol: str, timeframe: str, what: str) -> str:
    t = df["time"]
    return (f"{symbol} {timeframe} · {what} · {df.height} bars "
            f"{t.min():%Y-%m-%d} to {t.max():%Y-%m-%d}")


def ma_figure(df: pl.DataFrame, symbol: str, timeframe: str, axis: str = "auto",
              gaps: pl.DataFrame | None = None):
    """technical_indicators_ma (and the Bollinger bands): close with SMAs and EMAs."""
    xa = XAxis(df, timeframe, axis)
    d, t = xa.frame, xa.x
    fig, (ax,) = _frame(1, [2.4], _label(df, symbol, timeframe, "technical_indicators_ma: close, SMAs, EMAs, Bollinger"))
    ax.fill_between(t, _arr(d, "bb_lower_20"), _arr(d, "bb_upper_20"), color="tab:blue", alpha=0.12,
                    label="Bollinger 20, ±2σ")
    ax.plot(t, _arr(d, "close"), color="black", lw=1.3, label="close")
    smas = ("sma_5", "sma_10", "sma_20", "sma_50", "sma_200")
    for name, c in zip(smas, plt.cm.viridis(np.linspace(0.05, 0.9, len(smas))), strict=True):
        ax.plot(t, _arr(d, name), color=c, lw=1.0, label=name)
    for name, c in zip(("ema_12", "ema_26", "ema_50"), ("tab:orange", "tab:red", "tab:brown"), strict=True):
        ax.plot(t, _arr(d, name), color=c, lw=1.0, ls="--", label=name)
    ax.set_ylabel("price")
    _finish(fig, [ax], xa, gaps)
    return fig


def momentum_figure(df: pl.DataFrame, symbol: str, timeframe: str, axis: str = "auto",
                    gaps: pl.DataFrame | None = None):
    """technical_indicators_momentum: RSI, MACD, stochastic and ROC panels under the close."""
    xa = XAxis(df, timeframe, axis)
    d, t = xa.frame, xa.x
    fig, axes = _frame(5, [1.0, 0.8, 0.9, 0.8, 0.7],
                       _label(df, symbol, timeframe, "technical_indicators_momentum"), height=1.9)
    axes[0].plot(t, _arr(d, "close"), color="black", lw=1.1, label="close")
    axes[0].set_ylabel("price")
    axes[1].plot(t, _arr(d, "rsi_14"), color="tab:purple", lw=1.1, label="rsi_14")
    _bands(axes[1], 30, 70, "RSI (0-100)")
    hist = _arr(d, "macd_hist")
    axes[2].bar(t, hist, width=xa.width, color=np.where(hist >= 0, "tab:green", "tab:red"),
                alpha=0.6, label="macd_hist")
    axes[2].plot(t, _arr(d, "macd"), color="tab:blue", lw=1.1, label="macd (EMA12-EMA26)")
    axes[2].plot(t, _arr(d, "macd_signal"), color="tab:orange", lw=1.1, label="macd_signal (EMA9)")
    axes[2].axhline(0, color="grey", lw=0.6)
    axes[2].set_ylabel("MACD (price)")
    axes[3].plot(t, _arr(d, "stoch_k"), color="tab:blue", lw=1.1, label="stoch_k (%K)")
    axes[3].plot(t, _arr(d, "stoch_d"), color="tab:orange", lw=1.1, label="stoch_d (%D)")
    _bands(axes[3], 20, 80, "stochastic (0-100)")
    axes[4].plot(t, _arr(d, "roc_10"), color="tab:cyan", lw=1.1, label="roc_10")
    axes[4].axhline(0, color="grey", lw=0.6)
    axes[4].set_ylabel("ROC 10 (%)")
    _finish(fig, axes, xa, gaps)
    return fig


def _bands(ax, lo: float, hi: float, ylabel: str) -> None:
    for y in (lo, hi):
        ax.axhline(y, color="grey", lw=0.7, ls=":")
    ax.set_ylim(0, 100)
    ax.set_ylabel(ylabel)


def volatility_figure(df: pl.DataFrame, symbol: str, timeframe: str, axis: str = "auto",
                      gaps: pl.DataFrame | None = None):
    """technical_indicators_volatility: ATR and stddev in price units; NATR and band width relative."""
    xa = XAxis(df, timeframe, axis)
    d, t = xa.frame, xa.x
    fig, axes = _frame(3, [1.2, 0.9, 0.9], _label(df, symbol, timeframe, "technical_indicators_volatility"),
                       height=2.0)
    axes[0].fill_between(t, _arr(d, "bb_lower_20"), _arr(d, "bb_upper_20"), color="tab:blue", alpha=0.12,
                         label="bb_lower_20 .. bb_upper_20")
    axes[0].plot(t, _arr(d, "bb_middle_20"), color="tab:blue", lw=0.9, label="bb_middle_20")
    axes[0].plot(t, _arr(d, "close"), color="black", lw=1.1, label="close")
    axes[0].set_ylabel("price")
    axes[1].plot(t, _arr(d, "atr_14"), color="tab:red", lw=1.1, label="atr_14")
    axes[1].plot(t, _arr(d, "stddev_20"), color="tab:green", lw=1.1, label="stddev_20")
    axes[1].set_ylabel("price units")
    axes[2].plot(t, _arr(d, "natr_14"), color="tab:red", lw=1.1, label="natr_14 (% of close)")
    axes[2].plot(t, 100 * _arr(d, "bb_width_20"), color="tab:blue", lw=1.1, label="bb_width_20 × 100")
    axes[2].set_ylabel("% of price")
    _finish(fig, axes, xa, gaps)
    return fig


def volume_figure(df: pl.DataFrame, symbol: str, timeframe: str, axis: str = "auto",
                  gaps: pl.DataFrame | None = None):
    """volume_indicators: OBV and AD (cumulative, each on its own axis), ADOSC, MFI, volume with its
    20-bar SMA."""
    xa = XAxis(df, timeframe, axis)
    d, t = xa.frame, xa.x
    fig, axes = _frame(5, [0.8, 0.8, 0.8, 0.8, 0.9], _label(df, symbol, timeframe, "volume_indicators"),
                       height=1.9)
    eng = EngFormatter()
    # OBV and AD each on its own axis: both are running sums from the first stored bar, so their
    # levels differ by orders of magnitude and one shared axis flattens the smaller one.
    axes[0].plot(t, _arr(d, "obv"), color="tab:blue", lw=1.1, label="obv")
    axes[0].set_ylabel("OBV (cumulative\nvolume)")
    axes[1].plot(t, _arr(d, "ad"), color="tab:orange", lw=1.1, label="ad")
    axes[1].set_ylabel("AD (cumulative\nvolume)")
    axes[2].plot(t, _arr(d, "adosc"), color="tab:green", lw=1.1, label="adosc (EMA3-EMA10 of AD)")
    axes[2].axhline(0, color="grey", lw=0.6)
    axes[2].set_ylabel("volume")
    axes[3].plot(t, _arr(d, "mfi_14"), color="tab:purple", lw=1.1, label="mfi_14")
    _bands(axes[3], 20, 80, "MFI (0-100)")
    vol = np.where(_arr(d, "real_volume") > 0, _arr(d, "real_volume"), _arr(d, "tick_volume"))
    volume_panel(axes[4], t, vol, timeframe, width=xa.width / 0.7 * 0.8)
    axes[4].plot(t, _arr(d, "volume_sma_20"), color="tab:red", lw=1.2, label="volume_sma_20")
    axes[4].plot([], [], color="tab:gray", lw=6, label="effective volume")
    for a in axes[:3]:
        a.yaxis.set_major_formatter(eng)
    _finish(fig, axes, xa, gaps)
    return fig


def price_action_figure(df: pl.DataFrame, symbol: str, timeframe: str, candles: int = 120, axis: str = "auto",
                        gaps: pl.DataFrame | None = None):
    """price_action: candles (last ``candles`` bars) with doji and engulfing markers; ratios below.

    Return bars are coloured by the sign of ``log_return_1`` (close against the previous close),
    not by the candle's direction (close against its own open): a gap can make them differ.
    """
    label = _label(df.tail(candles), symbol, timeframe, "price_action: candles and patterns")
    xa = XAxis(df.tail(candles), timeframe, axis)
    d, t = xa.frame, xa.x
    o, h, lo, c = (_arr(d, k) for k in ("open", "high", "low", "close"))
    fig, axes = _frame(4, [1.8, 0.7, 0.6, 0.6],
                       label, height=2.0)
    ax = axes[0]
    up = c >= o
    w = xa.width
    ax.vlines(t, lo, h, color="black", lw=0.7)
    ax.bar(t, np.abs(c - o), bottom=np.minimum(o, c), width=w, color=np.where(up, "white", "black"),
           edgecolor="black", lw=0.7)
    pad = 0.02 * (np.nanmax(h) - np.nanmin(lo))
    doji = _arr(d, "cdl_doji") > 0
    bull, bear = _arr(d, "cdl_engulfing") > 0, _arr(d, "cdl_engulfing") < 0
    ax.scatter(t[doji], h[doji] + pad, marker="o", s=28, color="tab:blue", zorder=3,
               label=f"cdl_doji ({doji.sum()})")
    ax.scatter(t[bull], lo[bull] - pad, marker="^", s=48, color="tab:green", zorder=3,
               label=f"cdl_engulfing bullish ({bull.sum()})")
    ax.scatter(t[bear], h[bear] + 2 * pad, marker="v", s=48, color="tab:red", zorder=3,
               label=f"cdl_engulfing bearish ({bear.sum()})")
    ax.set_ylabel("price")
    lo_all, hi_all = np.nanmin(lo), np.nanmax(h)
    ax.set_ylim(lo_all - 3 * pad, hi_all + 4 * pad)  # room for the markers: no candle on the frame
    ret = _arr(d, "log_return_1")
    axes[1].bar(t, 100 * ret, width=w, color=np.where(ret >= 0, "tab:green", "tab:red"),
                label="log_return_1 × 100 (green ≥ 0, red < 0)")
    axes[1].plot(t, 100 * _arr(d, "co_ratio"), color="black", lw=0.8, marker=".", ms=3,
                 label="co_ratio × 100")
    axes[1].axhline(0, color="grey", lw=0.6)
    axes[1].set_ylabel("return (%)")
    lower, body, upper = _arr(d, "lower_shadow"), _arr(d, "body_ratio"), _arr(d, "upper_shadow")
    axes[2].bar(t, lower, width=w, color="tab:red", alpha=0.7, label="lower_shadow")
    axes[2].bar(t, body, bottom=lower, width=w, color="dimgray", label="body_ratio")
    axes[2].bar(t, upper, bottom=lower + body, width=w, color="tab:green", alpha=0.7, label="upper_shadow")
    axes[2].set_ylim(0, 1)
    axes[2].set_ylabel("share of bar range")
    axes[3].plot(t, 100 * _arr(d, "hl_range"), color="tab:blue", lw=1.0, marker=".", ms=3,
                 label="hl_range × 100")
    axes[3].set_ylim(bottom=0)
    axes[3].set_ylabel("range (% of close)")
    _finish(fig, axes, xa, gaps)
    return fig

