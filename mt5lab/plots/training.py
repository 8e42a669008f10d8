"""Training-set figures: label distribution, null/warm-up share per feature, splits on a timeline."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import polars as pl

from mt5lab.plots.base import _dates
from mt5lab.plots.features import VIEW_COLORS
from mt5lab.training.labels import LABEL_END

SPLIT_COLORS = {"train": "tab:blue", "validation": "tab:orange", "test": "tab:green"}


CLIP_PERCENT = (0.5, 99.5)
"""Return-label histograms span these percentiles of all rows; what lies outside is counted and said."""


def label_figure(ts: pl.DataFrame, labels: list[str], rows: dict[str, np.ndarray] | None = None,
                 title: str = ""):
    """Return labels as histograms (percent), direction labels as bars; per split if ``rows``.

    A return histogram spans the 0.5th to 99.5th percentile of all rows (:data:`CLIP_PERCENT`), so
    a few extreme returns do not squash it; the figure says how many rows (and what share) lie
    outside and are not drawn. ``title`` (e.g. symbol and timeframe) heads the figure.
    """
    fig, axes = plt.subplots(1, len(labels), figsize=(6 * len(labels), 4.2), squeeze=False)
    groups = rows or {"all rows": np.arange(ts.height)}
    for ax, name in zip(axes[0], labels, strict=True):
        s = ts[name]
        if name.startswith("fwd_direction"):
            cats = np.array([-1, 0, 1])
            w = 0.8 / len(groups)
            for i, (g, r) in enumerate(groups.items()):
                v = s[r].drop_nulls().to_numpy()
                share = [100 * np.mean(v == c) if len(v) else 0 for c in cats]
                ax.bar(cats + (i - (len(groups) - 1) / 2) * w, share, width=w,
                       color=SPLIT_COLORS.get(g, "tab:gray"), label=f"{g} (n={len(v)})")
            ax.set_xticks(cats, ["down (-1)", "flat (0)", "up (+1)"])
            ax.set_ylabel("share of rows (%)")
        else:
            v_all = s.drop_nulls().to_numpy() * 100
            edges = np.linspace(*np.nanpercentile(v_all, CLIP_PERCENT), 41) if len(v_all) else 10
            if len(v_all):
                out = int(np.sum((v_all < edges[0]) | (v_all > edges[-1])))
                ax.text(0.01, 0.98, f"not drawn: {out} of {len(v_all)} rows ({100 * out / len(v_all):.1f}%)\n"
                        f"outside [{edges[0]:.2f}%, {edges[-1]:.2f}%], the {CLIP_PERCENT[0]:g}th-"
                        f"{CLIP_PERCENT[1]:g}th percentiles", transform=ax.transAxes, va="top", fontsize=8,
                        color="tab:red")
            for g, r in groups.items():
                v = s[r].drop_nulls().to_numpy() * 100
                ax.hist(v, bins=edges, weights=np.full(len(v), 100 / max(len(v), 1)), histtype="step", lw=1.5,
                        color=SPLIT_COLORS.get(g, "tab:gray"), label=f"{g} (n={len(v)})")
            ax.axvline(0, color="grey", lw=0.7)
            ax.set_xlabel(f"{name} (log return, %)")
            ax.set_ylabel("share of rows (%)")
        ax.set_title(name)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{title + ': ' if title else ''}label distribution" + (" per split" if rows else ""))
    fig.tight_layout()
    return fig


def null_figure(table: pd.DataFrame, title: str):
    """Stacked horizontal bars per feature: warm-up nulls and other nulls, percent of rows."""
    t = table.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(12, 9.5))
    y = np.arange(len(t))[::-1]
    ax.barh(y, 100 * t["warmup_share"], color="tab:blue", label="null: in warm-up")
    ax.barh(y, 100 * t["other_null_share"], left=100 * t["warmup_share"], color="tab:red",
            label="null: other (no source value, zero denominator, beyond ttl)")
    ax.set_yticks(y, t["feature"], fontsize=8)
    for lab, v in zip(ax.get_yticklabels(), t["view"], strict=True):
        lab.set_color(VIEW_COLORS.get(v, "black"))
    partial = t.loc[t["null_share"] < 0.99, "null_share"]
    xmax = max(5.0, 100 * (partial.max() if len(partial) else 0.05) * 1.25)
    for yi, v in zip(y, t["null_share"], strict=True):
        if 100 * v > xmax:  # all-null features would squash the rest: clip and say so
            ax.text(xmax * 0.99, yi, f"{100 * v:.1f}% (bar clipped) ", va="center", ha="right", fontsize=7,
                    color="white", fontweight="bold")
        else:
            ax.text(100 * v + xmax * 0.005, yi, f"{100 * v:.1f}%", va="center", fontsize=7)
    ax.set_xlabel("share of training rows (%); labels coloured by view")
    ax.set_xlim(0, xmax)
    ax.set_ylim(-0.7, len(t) - 0.3)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def splits_figure(ts: pl.DataFrame, rows: dict[str, np.ndarray], folds=None, title: str = ""):
    """Train/validation/test (and walk-forward folds) as bands on the decision-time axis."""
    t = ts["event_timestamp"]
    end = ts[LABEL_END] if LABEL_END in ts.columns else t
    lanes = [("train / validation / test", rows)]
    for k, f in enumerate(folds or [], start=1):
        lanes.append((f"walk-forward fold {k}", {"train": f.train, "test": f.test}))
    fig, ax = plt.subplots(figsize=(12, 1.2 + 0.55 * len(lanes)))
    seen = set()
    for i, (_lane, parts) in enumerate(lanes):
        y = len(lanes) - 1 - i
        for name, r in parts.items():
            if not len(r):
                continue
            lo, hi, e = t[r].min(), t[r].max(), end[r].max()
            label = None if name in seen else name
            seen.add(name)
            ax.barh(y, hi - lo, left=lo, height=0.6, color=SPLIT_COLORS.get(name, "tab:gray"), label=label)
            if e is not None and e > hi:
                ax.barh(y, e - hi, left=hi, height=0.25, color="black",
                        label=None if "label horizon" in seen else "label horizon past the last decision")
                seen.add("label horizon")
    ax.set_yticks(range(len(lanes)), [lane for lane, _ in lanes][::-1], fontsize=9)
    ax.set_xlabel("decision time (UTC); gaps between bands are purged rows")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    _dates(ax)
    used = np.unique(np.concatenate([r for r in rows.values() if len(r)])) if rows else []
    ax.set_title(f"{title or 'Time splits'}\n{ts.height - len(used)} rows purged between splits "
                 f"(their label ends inside the next split)", fontsize=11)
    fig.tight_layout()
    return fig
