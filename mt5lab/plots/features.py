"""Catalog-wide figures: the 42-feature correlation heatmap and the warm-up of every feature."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mt5lab.catalog import BY_NAME, VIEW_NAMES, WARMUP_TOLERANCE

VIEW_COLORS = dict(zip(VIEW_NAMES, plt.cm.tab10(np.arange(len(VIEW_NAMES))), strict=True))


def _view_breaks(names: list[str]) -> list[float]:
    return [i - 0.5 for i in range(1, len(names)) if BY_NAME[names[i]].view != BY_NAME[names[i - 1]].view]


def correlation_heatmap(corr: pd.DataFrame, title: str, method: str = "Spearman"):
    """The 42 x 42 correlation matrix in catalog order, views separated; undefined cells grey."""
    names = list(corr.index)
    fig, ax = plt.subplots(figsize=(12.5, 11))
    cmap = plt.get_cmap("RdBu_r").copy()
    cmap.set_bad("#d9d9d9")
    im = ax.imshow(np.ma.masked_invalid(corr.to_numpy(dtype=float)), cmap=cmap, vmin=-1, vmax=1,
                   interpolation="nearest")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    for lab in [*ax.get_xticklabels(), *ax.get_yticklabels()]:
        lab.set_color(VIEW_COLORS[BY_NAME[lab.get_text()].view])
    for b in _view_breaks(names):
        ax.axhline(b, color="black", lw=0.8)
        ax.axvline(b, color="black", lw=0.8)
    cb = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    cb.set_label(f"{method} correlation (grey: undefined, constant or null in the window)")
    handles = [plt.Line2D([], [], color=c, marker="s", ls="", ms=8, label=v) for v, c in VIEW_COLORS.items()]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncols=3, fontsize=8,
              title="feature view (tick label colour)", title_fontsize=8, frameon=False)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def warmup_figure(table: pd.DataFrame, timeframe: str):
    """Warm-up bars per feature (from the views table), coloured by view."""
    t = table[table["in_registry"]].reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(12, 9))
    y = np.arange(len(t))[::-1]
    ax.barh(y, t["warmup_bars"], color=[VIEW_COLORS.get(v, "grey") for v in t["view"]])
    ax.set_yticks(y, t["feature"], fontsize=8)
    for yi, w in zip(y, t["warmup_bars"], strict=True):
        ax.text(w + 3, yi, str(int(w)), va="center", fontsize=7)
    ax.set_xlabel(f"warm-up (leading {timeframe} bars per symbol published as null; "
                  f"relative tolerance {WARMUP_TOLERANCE:g})")
    ax.set_title(f"Warm-up per feature, {timeframe} (from the catalog; the registry's views in colour)")
    handles = [plt.Line2D([], [], color=c, marker="s", ls="", ms=8, label=v) for v, c in VIEW_COLORS.items()]
    ax.legend(handles=handles, loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    ax.set_ylim(-0.7, len(t) - 0.3)
    fig.tight_layout()
    return fig
