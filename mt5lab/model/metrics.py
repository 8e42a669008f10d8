"""Out-of-sample metrics of predictions: information coefficients, hit rate, and a simple strategy's
returns net of costs with its Sharpe, drawdown and turnover.

- **IC** is the Pearson correlation of prediction and realized label over the scored rows; **rank
  IC** the Spearman correlation (Grinold and Kahn, *Active Portfolio Management*, ch. 6). Per fold,
  then **ICIR** = mean(IC over folds) / std(IC over folds, ddof=1).
- **Hit rate**: the share of rows with a non-zero label where ``sign(prediction) == sign(label)``.
- **Strategy** (sign of the prediction): per symbol, a position of ``sign(prediction)`` (+1 long, -1
  short) is taken at a decision and held for the label's horizon ``h`` bars, until the label's end
  (``label_end_timestamp``); the next decision traded is the first at or after that end (every
  ``h``-th decision when there is one per bar; every one with ``--every h``), so holding periods
  never overlap and the returns are independent observations for the Sharpe. Without a
  ``label_end_timestamp`` column, every ``h``-th row is traded. Period return = ``position * fwd_return_h`` (a log return) minus
  costs. Several symbols at one decision time are averaged (equal weight).
- **Costs** per unit of position traded (``|position change|``: 1 to enter, 2 to reverse): half the
  bar's spread, ``spread * point / (2 * close)``, where the row has a ``spread`` (points; ``point`` is
  the symbol's price increment, MT5 ``SymbolInfo.point``), else ``cost_bps / 10_000``. A round trip
  in and out thus costs one spread.
- **Max drawdown**: the largest fall of the cumulative log-return equity from its running peak,
  reported as a fraction ``1 - exp(-fall)``. **Turnover**: mean ``|position change|`` per period.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mt5lab.model.sharpe import moments, sharpe_ratio
from mt5lab.training.labels import LABEL_END


def ic(pred, label) -> float:
    """Pearson correlation of finite pairs; NaN when fewer than 3 or a side is constant."""
    p, y = _finite_pairs(pred, label)
    if p.size < 3 or p.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(p, y)[0, 1])


def rank_ic(pred, label) -> float:
    """Spearman rank correlation of finite pairs (average ranks for ties)."""
    p, y = _finite_pairs(pred, label)
    if p.size < 3:
        return float("nan")
    return ic(pd.Series(p).rank().to_numpy(), pd.Series(y).rank().to_numpy())


def hit_rate(pred, label) -> float:
    p, y = _finite_pairs(pred, label)
    nz = y != 0
    if not nz.any():
        return float("nan")
    return float((np.sign(p[nz]) == np.sign(y[nz])).mean())


def icir(ics) -> float:
    v = np.asarray([x for x in ics if x is not None and math.isfinite(x)], dtype=float)
    if v.size < 2 or v.std(ddof=1) == 0:
        return float("nan")
    return float(v.mean() / v.std(ddof=1))


def _finite_pairs(pred, label):
    p = np.asarray(pred, dtype=float)
    y = np.asarray(label, dtype=float)
    ok = np.isfinite(p) & np.isfinite(y)
    return p[ok], y[ok]


def infer_point(close) -> float:
    """A symbol's price increment from its closes: ``10^-d`` for the fewest decimals ``d`` (0..8)
    that write every close exactly (to 1e-9 relative). MT5 rounds prices to the symbol's digits."""
    c = np.asarray(close, dtype=float)
    c = c[np.isfinite(c)]
    for d in range(9):
        scaled = c * 10 ** d
        if np.all(np.abs(scaled - np.round(scaled)) <= 1e-9 * np.maximum(1.0, np.abs(scaled))):
            return 10.0 ** -d
    return 1e-8


def _ns(col) -> np.ndarray:
    return pd.DatetimeIndex(pd.to_datetime(col, utc=True)).as_unit("ns").asi8


def holding_rows(t: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Positions of the decisions traded when each position is held from its decision time ``t``
    (sorted, int64 ns) until its label end ``end``: the first row, then the first at or after the
    previous one's end."""
    out, i = [], 0
    while i < t.size:
        out.append(i)
        i = max(i + 1, int(np.searchsorted(t, end[i], side="left")))
    return np.asarray(out, dtype=np.int64)


def strategy_returns(frame: pd.DataFrame, horizon: int, cost_bps: float, point: dict | None = None,
                     position: str = "sign") -> pd.DataFrame:
    """The strategy's period returns from out-of-sample predictions.

    ``frame``: one row per scored decision with ``symbol``, ``event_timestamp``, ``prediction``,
    ``label`` (the ``fwd_return_h`` log return), and optionally ``label_end_timestamp`` (the holding
    period's end), ``close`` and ``spread`` (points).
    ``point``: price increment per symbol (default: inferred from its closes, :func:`infer_point`).
    Returns per period (decision time, time ordered): ``event_timestamp``, ``gross``, ``cost``,
    ``net``, ``buy_hold``, ``turnover`` (log returns, costs as positive fractions).
    """
    if position != "sign":
        raise ValueError(f"unknown strategy position rule {position!r} (only 'sign')")
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1 bar, got {horizon}")
    rows = []
    for sym, g in frame.sort_values("event_timestamp", kind="stable").groupby("symbol", sort=True):
        g = g[np.isfinite(g["label"].to_numpy(dtype=float)) & np.isfinite(g["prediction"].to_numpy(dtype=float))]
        if LABEL_END in g.columns and g[LABEL_END].notna().all():
            g = g.iloc[holding_rows(_ns(g["event_timestamp"]), _ns(g[LABEL_END]))]
        else:
            g = g.iloc[::horizon]
        if g.empty:
            continue
        pos = np.sign(g["prediction"].to_numpy(dtype=float))
        trade = np.abs(np.diff(np.concatenate(([0.0], pos))))
        unit = np.full(len(g), cost_bps / 10_000.0)
        if "spread" in g and "close" in g:
            spread = g["spread"].to_numpy(dtype=float)
            close = g["close"].to_numpy(dtype=float)
            pt = (point or {}).get(sym) or infer_point(close)
            has = np.isfinite(spread) & np.isfinite(close) & (close > 0)
            unit[has] = spread[has] * pt / (2.0 * close[has])
        y = g["label"].to_numpy(dtype=float)
        rows.append(pd.DataFrame({"event_timestamp": g["event_timestamp"].to_numpy(), "gross": pos * y,
                                  "cost": trade * unit, "buy_hold": y, "turnover": trade}))
    if not rows:
        return pd.DataFrame(columns=["event_timestamp", "gross", "cost", "net", "buy_hold", "turnover"])
    per = pd.concat(rows, ignore_index=True).groupby("event_timestamp", sort=True).mean().reset_index()
    per["net"] = per["gross"] - per["cost"]
    return per[["event_timestamp", "gross", "cost", "net", "buy_hold", "turnover"]]


def max_drawdown(log_returns) -> float:
    """Largest peak-to-trough fall of ``exp(cumsum(log_returns))``, as a fraction in [0, 1)."""
    r = np.nan_to_num(np.asarray(log_returns, dtype=float))
    if r.size == 0:
        return 0.0
    eq = np.concatenate(([0.0], np.cumsum(r)))
    fall = float((np.maximum.accumulate(eq) - eq).max())
    return 1.0 - math.exp(-fall)


def strategy_summary(per: pd.DataFrame) -> dict:
    """Sharpe (per period, net), its moments, drawdown, turnover and totals of a :func:`strategy_returns` table."""
    net = per["net"].to_numpy(dtype=float) if len(per) else np.array([])
    skew, kurt = moments(net)
    return {"periods": int(net.size), "sharpe": sharpe_ratio(net),
            "sharpe_gross": sharpe_ratio(per["gross"]) if len(per) else float("nan"),
            "sharpe_buy_hold": sharpe_ratio(per["buy_hold"]) if len(per) else float("nan"),
            "skew": skew, "kurtosis": kurt, "max_drawdown": max_drawdown(net),
            "turnover": float(per["turnover"].mean()) if len(per) else float("nan"),
            "total_net_log_return": float(net.sum()), "total_cost": float(per["cost"].sum()) if len(per) else 0.0,
            "total_buy_hold_log_return": float(per["buy_hold"].sum()) if len(per) else 0.0}
