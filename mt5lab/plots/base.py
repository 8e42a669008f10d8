"""Matplotlib figures. Each function returns a Figure; ``save`` writes it as PNG too."""

from __future__ import annotations

from pathlib import Path

import matplotlib

if not matplotlib.get_backend() or matplotlib.get_backend().lower().startswith("qt"):
    matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import polars as pl


def save(fig, path: str | Path, dpi: int = 110) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def _dates(ax) -> None:
    loc = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
    ax.grid(alpha=0.3)


def price_overview(features: pl.DataFrame, symbol: str, timeframe: str, last: int = 300):
    """Close with SMA/EMA and Bollinger bands, plus RSI: the demo chart."""
    df = features.filter(pl.col("symbol") == symbol).sort("time").tail(last)
    t = df["event_timestamp"].to_numpy()
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 1]})
    ax.plot(t, df["close"], lw=1.2, color="black", label="close")
    for name, style in (("sma_20", "-"), ("sma_50", "-"), ("ema_12", "--"), ("ema_26", "--")):
        ax.plot(t, df[name], lw=0.9, ls=style, label=name)
    ax.fill_between(t, df["bb_lower_20"].fill_null(float("nan")), df["bb_upper_20"].fill_null(float("nan")),
                    alpha=0.15, color="tab:blue", label="Bollinger 20, 2σ")
    ax.set_title(f"{symbol} {timeframe}: close, moving averages and Bollinger bands (last {df.height} bars)")
    ax.set_ylabel("price")
    ax.legend(loc="upper left", ncols=3, fontsize=8)
    ax2.plot(t, df["rsi_14"], lw=1, color="tab:purple", label="RSI 14")
    ax2.axhline(70, color="grey", lw=0.6, ls=":")
    ax2.axhline(30, color="grey", lw=0.6, ls=":")
    ax2.set_ylim(0, 100)
    ax2.set_ylabel("RSI (0-100)")
    ax2.set_xlabel("bar close (UTC)")
    ax2.legend(loc="upper left", fontsize=8)
    for a in (ax, ax2):
        _dates(a)
    fig.tight_layout()
    return fig
