"""Figures for data quality: bars with gaps, suspicious and rejected rows; quality counts over time.

Inputs come from :mod:`mt5lab.research.quality`; these functions only draw. Each returns a Figure.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from matplotlib.ticker import EngFormatter

from mt5lab.catalog import bar_duration
from mt5lab.plots.axis import XAxis
from mt5lab.plots.base import _dates

MAX_LABELS = 12  # rejected rows labelled on the chart (all are marked; the table lists them all)


def validation_figure(inspection, max_gap_labels: int = 0, axis: str = "auto"):
    """Close (and volume) of the inspected bars; gaps shaded, suspicious and rejected rows marked.

    ``axis``: ``auto``, ``bars`` (trading time) or ``time`` (:mod:`mt5lab.plots.axis`); gaps are drawn
    by :meth:`~mt5lab.plots.axis.XAxis.mark_gaps`, as in the feature-view figures.
    """
    bars = inspection.bars
    fig, (ax, axv) = plt.subplots(2, 1, figsize=(12, 6.5), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 1]})
    s = inspection.summary()
    tf = bars["timeframe"][0] if bars.height and "timeframe" in bars.columns else "D1"
    symbols = ", ".join(sorted(bars["symbol"].unique().to_list())) if bars.height else inspection.source
    xa = XAxis(bars.unique("time", keep="first", maintain_order=True) if bars.height else bars, tf, axis) \
        if bars.height else None
    if xa is None:
        ax.text(0.5, 0.5, "file could not be read: nothing to draw", ha="center", va="center",
                transform=ax.transAxes, color="tab:red")
    else:
        d, t = xa.frame, xa.x
        ax.plot(t, d["close"].cast(pl.Float64).fill_null(float("nan")).to_numpy(), lw=0.8, color="black",
                label="close")
        vol = np.where(d["real_volume"].fill_null(0).to_numpy() > 0, d["real_volume"].fill_null(0),
                       d["tick_volume"].fill_null(0))
        volume_panel(axv, t, vol, tf, width=xa.width / 0.7 * 0.8)
    if inspection.report is not None and xa is not None:
        for k, a in enumerate((ax, axv)):
            xa.mark_gaps(a, inspection.report.gaps, label=k == 0)
        sus = inspection.report.suspicious.join(bars.select("time", "close").unique("time"), on="time", how="left")
        if sus.height:
            ax.scatter(xa.at(sus["time"]), sus["close"].to_numpy(), marker="^", s=40, color="tab:orange",
                       edgecolor="black", lw=0.5, zorder=3, label=f"suspicious ({sus.height})")
    rej = (inspection.rejected.filter(pl.col("time").is_not_null())
           .group_by("source_row", "time", maintain_order=True).agg(pl.col("rule").str.join(", ")))
    if rej.height and xa is not None:
        rej = rej.join(bars.select("time", "close").unique("time"), on="time", how="left")
        x = xa.at(rej["time"])
        ax.scatter(x, rej["close"].to_numpy(), marker="X", s=120, color="tab:red",
                   edgecolor="black", zorder=4, label=f"rejected rows ({rej.height})")
        for xi, r in zip(x[:MAX_LABELS], rej.head(MAX_LABELS).iter_rows(named=True), strict=False):
            ax.annotate(f"row {r['source_row']}: {r['rule']}", (xi, r["close"]), xytext=(8, 8),
                        textcoords="offset points", color="tab:red", fontsize=9)
    status = (f"{s['gaps']} gaps ({s['missing_bars']} missing bars), {s['suspicious']} suspicious"
              if inspection.ok else f"REJECTED: {s['rejected']} rows, {s['violations']} violations "
                                    f"(first: {s['rule']})")
    ax.set_title(f"{symbols} {tf} ({inspection.calendar} calendar): {s['rows']} bars, {status}")
    ax.set_ylabel("close (price)")
    ax.legend(loc="upper left", fontsize=8)
    for a in (ax, axv):
        if xa is not None:
            xa.format(a)
        else:
            _dates(a)
    axv.set_xlabel(xa.label if xa is not None else "bar open time (UTC)")
    fig.tight_layout()
    return fig


def volume_panel(ax, t, vol, tf: str, color: str = "tab:gray", width: float | None = None) -> None:
    """Volume as bars when few, as a filled step line when many (thin bars alias into stripes).
    ``width``: a bar's width in x units (default: 80% of the timeframe, in days)."""
    if len(t) <= 400:
        ax.bar(t, vol, width=width if width is not None else bar_duration(tf).total_seconds() / 86400 * 0.8,
               color=color)
    else:
        ax.fill_between(t, vol, step="mid", color=color, lw=0)
    ax.yaxis.set_major_formatter(EngFormatter())
    ax.set_ylim(bottom=0)
    ax.set_ylabel("volume\n(real, else ticks)")


def quality_over_time_figure(q: pl.DataFrame, title: str):
    """Bars, missing bars, suspicious rows and null share per period (from ``quality_over_time``)."""
    has_null = "null_share" in q.columns
    n = 3 if has_null else 2
    fig, axes = plt.subplots(n, 1, figsize=(13, 2.3 * n + 1), sharex=True)
    t = q["period"].to_numpy()
    width = _period_width(q["period"])
    axes[0].bar(t, q["bars"].to_numpy(), width=width, align="edge", color="tab:blue", label="bars present")
    axes[0].set_ylabel("bars / period")
    axes[1].bar(t, q["missing_bars"].to_numpy(), width=width / 2, align="edge", color="tab:red",
                label="missing bars (gaps)")
    axes[1].bar(t + np.timedelta64(int(width / 2 * 86400), "s"), q["suspicious"].to_numpy(), width=width / 2,
                align="edge", color="tab:orange", label="suspicious rows")
    axes[1].set_ylabel("rows / period")
    if has_null:
        axes[2].step(t, 100 * q["null_share"].fill_null(float("nan")).to_numpy(), where="post",
                     color="tab:purple", label="null feature values\n(warm-up included)")
        axes[2].set_ylabel("null share (%)")
        axes[2].set_ylim(bottom=0)
    axes[-1].set_xlabel("period start (UTC)")
    for a in axes:
        a.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
        _dates(a)
    axes[0].set_title(title)
    fig.tight_layout()
    return fig


def _period_width(periods: pl.Series) -> float:
    if periods.len() < 2:
        return 20.0
    d = periods.sort().diff().drop_nulls().min()
    return max(d.total_seconds() / 86400 * 0.8, 0.02)
