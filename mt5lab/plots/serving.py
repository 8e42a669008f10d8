"""Serving figures: the freshness rule across a market closure, on the stored bars around it."""

from __future__ import annotations

from datetime import timedelta

import matplotlib.pyplot as plt
import numpy as np
import polars as pl

from mt5lab.catalog import bar_duration
from mt5lab.plots.base import _dates


def broken_line(t: pl.Series, y: pl.Series, step: timedelta) -> tuple[np.ndarray, np.ndarray]:
    """Arrays for ``plot`` with a NaN wherever consecutive times are more than ``step`` apart, so a
    market closure shows as a break, not as a straight line across it."""
    tn, yn = t.to_numpy(), y.cast(pl.Float64).to_numpy()
    if len(tn) < 2:
        return tn, yn
    cut = np.flatnonzero(np.diff(tn) > np.timedelta64(int(step.total_seconds()), "s")) + 1
    return np.insert(tn, cut, tn[cut - 1]), np.insert(yn, cut, np.nan)


STATUS_COLORS = {"fresh": "tab:green", "stale": "tab:orange", "expired": "tab:red", "future": "purple",
                 "missing": "grey"}


def weekend_figure(store, scenarios):
    """One panel per (symbol, timeframe) of :func:`mt5lab.research.serving.weekend_tables`."""
    groups = list(scenarios.groupby(["symbol", "timeframe"], sort=False)) if len(scenarios) else []
    if not groups:
        fig, ax = plt.subplots(figsize=(12, 2))
        ax.text(0.5, 0.5, "no stored symbol to draw: ingest and build first", ha="center", va="center")
        ax.set_axis_off()
        return fig
    fig, axes = plt.subplots(len(groups), 1, figsize=(12, 3.6 * len(groups) + 0.5), squeeze=False)
    for ax, ((sym, tf), g) in zip(axes[:, 0], groups, strict=True):
        last = g["last_close"].iloc[0].to_pydatetime()
        end = g["now (UTC)"].max().to_pydatetime() + timedelta(hours=6)
        start = last - 2 * (end - last) / 3
        bars = store.read_bars(tf, [sym], start=start - bar_duration(tf), end=end)
        t, y = broken_line(bars["time"] + bar_duration(tf), bars["close"], bar_duration(tf))
        ax.plot(t, y, color="black", lw=1.0, marker=".", ms=3, label=f"{sym} close (at bar close)")
        closure_end = g.loc[g["scenario"] == "closure, just before reopen", "now (UTC)"].iloc[0]
        ax.axvspan(last, closure_end + timedelta(minutes=1), color="grey", alpha=0.2,
                   label=f"market closed ({g['calendar'].iloc[0]} calendar)")
        ax.axvline(last, color="black", ls=":", lw=1)
        for k, r in enumerate(g.to_dict("records"), start=1):
            color = STATUS_COLORS[r["status"]]
            ax.axvline(r["now (UTC)"], color=color, lw=1.6,
                       label=f"{k}. {r['weekday']}: {r['status']} ({r['scenario']})")
            ax.annotate(str(k), (r["now (UTC)"], 1.0), xycoords=("data", "axes fraction"),
                        xytext=(3, -12 - 14 * (k % 2)),
                        textcoords="offset points", color=color, fontweight="bold")
        ax.set_xlim(start, end)
        ax.set_ylabel("close (price)")
        ax.set_title(f"{sym} {tf}: a feed whose last bar closed {last:%a %Y-%m-%d %H:%M} UTC, "
                     f"read at 5 instants")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
        _dates(ax)
    axes[-1, 0].set_xlabel("time (UTC)")
    fig.tight_layout()
    return fig

