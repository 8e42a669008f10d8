"""Model figures: folds on a timeline, IC per fold, the out-of-sample equity curve net of costs
against buy-and-hold, importance by view and by feature, and the PSR/DSR panel.

Each function takes an evaluation (:class:`mt5lab.model.evaluate.Evaluation`, read through its
attributes only) and returns a matplotlib Figure. Times are UTC decision times.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mt5lab.plots.base import _dates
from mt5lab.plots.features import VIEW_COLORS


def folds_figure(ev, title: str = ""):
    """One line per split: training rows (blue), test rows (green), purged and embargoed rows (red)."""
    t = pd.to_datetime(ev.times, utc=True).to_numpy()
    n = len(ev.cv_folds)
    fig, ax = plt.subplots(figsize=(11, 0.45 * n + 1.6))
    for i, f in enumerate(ev.cv_folds):
        y = n - i
        ax.scatter(t[f.train], np.full(f.train.size, y), s=2, marker="|", color="tab:blue")
        ax.scatter(t[f.test], np.full(f.test.size, y), s=2, marker="|", color="tab:green")
        ax.scatter(t[f.dropped], np.full(f.dropped.size, y), s=40, marker="|", color="tab:red")
    ax.set_yticks(range(1, n + 1), [f"fold {n - k}" for k in range(1, n + 1)])
    ax.scatter([], [], color="tab:blue", label="train")
    ax.scatter([], [], color="tab:green", label="test")
    ax.scatter([], [], color="tab:red", label="purged / embargoed")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncols=3, fontsize=8)
    ax.set_ylim(0.4, n + 0.6)
    ax.set_title(title or f"{ev.config['cv']}: {n} splits, embargo {ev.config['embargo']} bars")
    ax.set_xlabel("decision time (UTC)")
    _dates(ax)
    fig.tight_layout()
    return fig


def ic_figure(ev, title: str = ""):
    """IC and rank IC per fold, with the mean IC and ICIR in the title."""
    folds = pd.DataFrame(ev.folds)
    fig, ax = plt.subplots(figsize=(9, 3.8))
    x = np.arange(len(folds))
    ax.bar(x - 0.2, folds["ic"].astype(float), width=0.4, label="IC (Pearson)", color="tab:blue")
    ax.bar(x + 0.2, folds["rank_ic"].astype(float), width=0.4, label="rank IC (Spearman)", color="tab:orange")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(x, [f"{r.fold}\n{str(r.test_start)[:10]}" for r in folds.itertuples()], fontsize=8)
    m = ev.metrics
    ax.set_title(title or f"out-of-sample IC per fold: mean {m['ic']:.3f}, ICIR {m['icir']:.2f}")
    ax.set_ylabel("correlation")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def equity_figure(ev, title: str = ""):
    """Cumulative log return of the strategy (net and gross of costs) and of buy-and-hold."""
    s = ev.strategy
    fig, ax = plt.subplots(figsize=(11, 4.2))
    if len(s):
        t = pd.to_datetime(s["event_timestamp"], utc=True)
        ax.plot(t, s["net"].cumsum(), lw=1.4, color="tab:green", label="strategy, net of costs")
        ax.plot(t, s["gross"].cumsum(), lw=0.9, ls="--", color="tab:green", alpha=0.6, label="strategy, gross")
        ax.plot(t, s["buy_hold"].cumsum(), lw=1.1, color="tab:gray", label="buy and hold")
    m = ev.metrics
    ax.set_title(title or f"out-of-sample equity: Sharpe {m['sharpe']:.3f} per period net "
                          f"(buy and hold {m['sharpe_buy_hold']:.3f}), max drawdown {m['max_drawdown']:.1%}")
    ax.set_ylabel("cumulative log return")
    ax.legend(fontsize=8, loc="upper left")
    _dates(ax)
    fig.tight_layout()
    return fig


def importance_figure(ev, top: int = 20, title: str = ""):
    """Left: MDA per view (clustered, error bar = standard error over folds) and MDI; right: the
    ``top`` features by MDA, coloured by view."""
    v = ev.importance_by_view
    f = ev.importance.head(top).iloc[::-1]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, max(4.0, 0.28 * len(f) + 1.5)),
                                 gridspec_kw={"width_ratios": [1, 1.3]})
    y = np.arange(len(v))
    a1.barh(y + 0.2, v["mda"], 0.4, xerr=v["mda_se"].fillna(0), color=[VIEW_COLORS.get(x, "tab:gray") for x in v["view"]],
            label="MDA (IC drop, out of fold)")
    a1.barh(y - 0.2, v["mdi"] * (np.nanmax(np.abs(v["mda"])) or 1), 0.4, color="lightgray",
            label="MDI / gain share (scaled)")
    a1.set_yticks(y, v["view"], fontsize=8)
    a1.axvline(0, color="black", lw=0.8)
    a1.set_title("by feature view (clustered MDA)")
    a1.legend(fontsize=7)
    yf = np.arange(len(f))
    a2.barh(yf, f["mda"], xerr=f["mda_se"].fillna(0), color=[VIEW_COLORS.get(x, "tab:gray") for x in f["view"]])
    a2.set_yticks(yf, f["feature"], fontsize=8)
    a2.axvline(0, color="black", lw=0.8)
    a2.set_title(f"top {len(f)} features by MDA")
    fig.suptitle(title or f"importance, {ev.config['model']}")
    fig.tight_layout()
    return fig


def sharpe_figure(ev, title: str = ""):
    """The Sharpe estimate with its standard error against the DSR's benchmark (the expected
    maximum of the trials), and the PSR and DSR as probabilities with the 0.95 line."""
    m = ev.metrics
    sr, n = m["sharpe"], max(m["periods"], 2)
    var = 1 - m["skew"] * sr + (m["kurtosis"] - 1) / 4 * sr ** 2 if math.isfinite(sr) else float("nan")
    se = math.sqrt(var / (n - 1)) if var == var and var > 0 else float("nan")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.8))
    if math.isfinite(sr):
        a1.errorbar([0], [sr], yerr=[[2 * se], [2 * se]] if se == se else None, fmt="o", color="tab:blue",
                    capsize=6, label="Sharpe per period ± 2 SE")
    a1.axhline(0, color="black", lw=0.8)
    a1.axhline(m.get("sharpe_benchmark", 0.0), color="tab:red", ls="--",
               label=f"expected max of {m['n_trials']} trial(s)")
    a1.set_xticks([])
    a1.legend(fontsize=8)
    a1.set_title(f"Sharpe {sr:.3f} over {m['periods']} periods")
    vals = [m["psr"], m["dsr"]]
    a2.bar(["PSR (vs 0)", f"DSR ({m['n_trials']} trials)"], [0 if v != v else v for v in vals],
           color=["tab:blue", "tab:purple"])
    a2.axhline(0.95, color="tab:red", ls=":", label="0.95")
    a2.set_ylim(0, 1)
    a2.legend(fontsize=8)
    a2.set_title("probability that the true Sharpe beats the benchmark")
    fig.suptitle(title or "probabilistic and deflated Sharpe ratio (Bailey and López de Prado 2012, 2014)")
    fig.tight_layout()
    return fig
