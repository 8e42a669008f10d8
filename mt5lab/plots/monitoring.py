"""Drift figures: PSI per feature (bar chart) and reference-vs-recent histograms of flagged features."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import polars as pl

from mt5lab.plots.features import VIEW_COLORS
from mt5lab.research.monitoring import DRIFT, MODERATE

STATUS_COLORS = {"stable": "tab:green", "moderate": "tab:orange", "drift": "tab:red",
                 "insufficient data": "lightgrey"}
FLOOR = 1e-4


def psi_figure(table: pd.DataFrame, title: str):
    """Horizontal PSI bars in catalog order, log scale, coloured by status, thresholds marked."""
    t = table.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(12, 9.5))
    y = np.arange(len(t))[::-1]
    vals = t["psi"].astype(float).fillna(FLOOR).clip(lower=FLOOR)
    ax.barh(y, vals, color=[STATUS_COLORS[s] for s in t["status"]], left=0)
    ax.set_xscale("log")
    ax.set_yticks(y, t["feature"], fontsize=8)
    ax.axvline(MODERATE, color="tab:orange", ls="--", lw=1)
    ax.axvline(DRIFT, color="tab:red", ls="--", lw=1)
    for yi, v, s in zip(y, t["psi"], t["status"], strict=True):
        ax.text(max(v if pd.notna(v) else FLOOR, FLOOR) * 1.15, yi,
                "n/a" if s == "insufficient data" else f"{v:.3g}", va="center", fontsize=7)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c, label=s) for s, c in STATUS_COLORS.items()]
    handles += [plt.Line2D([], [], color="tab:orange", ls="--", label=f"moderate ≥ {MODERATE}"),
                plt.Line2D([], [], color="tab:red", ls="--", label=f"drift ≥ {DRIFT}")]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.set_xlabel(f"PSI, recent vs reference window (log scale; values below {FLOOR:g} drawn at {FLOOR:g}); "
                  "labels coloured by view")
    ax.set_ylim(-0.7, len(t) - 0.3)
    ax.set_xlim(left=FLOOR / 1.5)
    ax.grid(axis="x", which="major", alpha=0.3)
    views = list(t["view"])
    for i in range(1, len(views)):
        if views[i] != views[i - 1]:
            ax.axhline(y[i] + 0.5, color="black", lw=0.6)
    for lab, v in zip(ax.get_yticklabels(), views, strict=True):
        lab.set_color(VIEW_COLORS.get(v, "black"))
    ax.set_title(title)
    fig.tight_layout()
    return fig


def drift_detail_figure(reference: pl.DataFrame, current: pl.DataFrame, table: pd.DataFrame,
                        top: int = 6, title: str = ""):
    """Histograms (reference vs recent, as shares) of the ``top`` features with the highest PSI."""
    ranked = table.dropna(subset=["psi"]).sort_values("psi", ascending=False).head(top)
    n = max(len(ranked), 1)
    cols = 3
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(12, 3.1 * rows + 0.6), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax, r in zip(axes.flat, ranked.itertuples(), strict=False):
        ref = _finite(reference[r.feature])
        cur = _finite(current[r.feature])
        lo, hi = np.nanmin(np.r_[ref, cur]), np.nanmax(np.r_[ref, cur])
        edges = np.linspace(lo, hi if hi > lo else lo + 1, 31)
        ax.hist(ref, bins=edges, weights=np.full(len(ref), 100 / max(len(ref), 1)), alpha=0.55,
                color="tab:blue", label=f"reference (n={len(ref)})")
        ax.hist(cur, bins=edges, weights=np.full(len(cur), 100 / max(len(cur), 1)), alpha=0.55,
                color="tab:red", label=f"recent (n={len(cur)})")
        ax.set_title(f"{r.feature}: PSI {r.psi:.3g} ({r.status})", fontsize=10)
        ax.set_ylabel("share of window (%)")
        ax.set_xlabel(f"{r.feature} value")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _finite(s: pl.Series) -> np.ndarray:
    a = s.cast(pl.Float64).to_numpy()
    return a[np.isfinite(a)]
