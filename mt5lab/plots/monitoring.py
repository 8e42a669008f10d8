"""Drift figures: PSI per feature (bar chart) and reference-vs-recent histograms of the most shifted
scale-free and level features."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import polars as pl

from mt5lab.plots.features import VIEW_COLORS
from mt5lab.research.monitoring import DRIFT, MODERATE, ranked

STATUS_COLORS = {"stable": "tab:green", "moderate": "tab:orange", "drift": "tab:red",
                 "insufficient data": "lightgrey"}


def psi_figure(table: pd.DataFrame, title: str):
    """Horizontal PSI bars in catalog order on a **linear** axis (a bar's length is its PSI),
    coloured by status; level features hatched; thresholds marked; no bar for insufficient data."""
    t = table.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(12, 9.5))
    y = np.arange(len(t))[::-1]
    vals = t["psi"].astype(float).fillna(0.0)
    level = (t["kind"] == "level").to_numpy() if "kind" in t.columns else np.zeros(len(t), bool)
    bars = ax.barh(y, vals, color=[STATUS_COLORS[s] for s in t["status"]], left=0)
    for b, lv in zip(bars, level, strict=True):
        if lv:
            b.set_hatch("///")
            b.set_edgecolor("white")
    ax.set_yticks(y, t["feature"], fontsize=8)
    ax.axvline(MODERATE, color="tab:orange", ls="--", lw=1)
    ax.axvline(DRIFT, color="tab:red", ls="--", lw=1)
    top = float(vals.max()) if len(vals) else DRIFT
    for yi, v, s in zip(y, t["psi"], t["status"], strict=True):
        label = "insufficient data" if s == "insufficient data" else f"{v:.3g}"
        ax.text((v if pd.notna(v) else 0.0) + top * 0.01, yi, label, va="center", fontsize=7,
                color="grey" if s == "insufficient data" else "black")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c, label=s) for s, c in STATUS_COLORS.items()]
    handles += [plt.Rectangle((0, 0), 1, 1, facecolor="tab:gray", hatch="///", edgecolor="white",
                              label="level feature (price/volume units:\ndrifts with the market)"),
                plt.Line2D([], [], color="tab:orange", ls="--", label=f"moderate ≥ {MODERATE}"),
                plt.Line2D([], [], color="tab:red", ls="--", label=f"drift ≥ {DRIFT}")]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.set_xlabel("PSI, recent vs reference window (linear scale); labels coloured by view")
    ax.set_ylim(-0.7, len(t) - 0.3)
    ax.set_xlim(0, max(top, DRIFT) * 1.12)
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
                        top: int = 3, title: str = ""):
    """Histograms (reference vs recent, as shares): the ``top`` most shifted **scale-free**
    features in the first row, the ``top`` most shifted **level** features in the second, each
    ranked by PSI with ties broken by the KS statistic (:func:`mt5lab.research.monitoring.ranked`)."""
    groups = [("scale-free", ranked(table, "scale-free", top)), ("level", ranked(table, "level", top))]
    fig, axes = plt.subplots(2, top, figsize=(12, 6.8), squeeze=False)
    for row, (which, ranks) in enumerate(groups):
        for ax in axes[row, len(ranks):]:
            ax.set_visible(False)
        for ax, r in zip(axes[row], ranks.itertuples(), strict=False):
            ref = _finite(reference[r.feature])
            cur = _finite(current[r.feature])
            lo, hi = np.nanmin(np.r_[ref, cur]), np.nanmax(np.r_[ref, cur])
            edges = np.linspace(lo, hi if hi > lo else lo + 1, 31)
            ax.hist(ref, bins=edges, weights=np.full(len(ref), 100 / max(len(ref), 1)), alpha=0.55,
                    color="tab:blue", label=f"reference (n={len(ref)})")
            ax.hist(cur, bins=edges, weights=np.full(len(cur), 100 / max(len(cur), 1)), alpha=0.55,
                    color="tab:red", label=f"recent (n={len(cur)})")
            ax.set_title(f"{which}: {r.feature}\nPSI {r.psi:.3g}, KS {r.ks:.2f} ({r.status})", fontsize=9)
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
