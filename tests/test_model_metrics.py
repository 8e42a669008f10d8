"""Metrics of mt5lab.model.metrics on small cases computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mt5lab.model import estimators, metrics


def _frame(**cols):
    n = len(next(iter(cols.values())))
    base = {"symbol": ["A"] * n, "event_timestamp": pd.date_range("2024-01-01", periods=n, freq="D", tz="UTC")}
    return pd.DataFrame(base | cols)


def test_strategy_trades_every_h_th_decision_with_bps_costs():
    # horizon 2: decisions 0, 2, 4 trade; positions +1, -1, +1; |changes| 1, 2, 2; 10 bps per unit
    f = _frame(prediction=[0.5, 0.1, -0.3, 0.2, 0.7, -0.1], label=[0.01, 9.0, -0.02, 9.0, 0.03, 9.0])
    per = metrics.strategy_returns(f, horizon=2, cost_bps=10.0)
    assert per["gross"].tolist() == pytest.approx([0.01, 0.02, 0.03])
    assert per["cost"].tolist() == pytest.approx([0.001, 0.002, 0.002])
    assert per["net"].tolist() == pytest.approx([0.009, 0.018, 0.028])
    assert per["buy_hold"].tolist() == pytest.approx([0.01, -0.02, 0.03])
    s = metrics.strategy_summary(per)
    assert s["turnover"] == pytest.approx(5 / 3) and s["periods"] == 3
    assert s["sharpe"] == pytest.approx(np.mean([0.009, 0.018, 0.028]) / np.std([0.009, 0.018, 0.028], ddof=1))


def test_holding_periods_follow_the_label_end_not_the_row_count():
    # decisions every 2nd daily bar (--every 2), label fwd_return_2: each label ends at the next
    # decision, so the 4 holding periods never overlap and all 4 decisions trade (not rows 0 and 2 only)
    f = _frame(prediction=[0.5, -0.3, 0.2, 0.7], label=[0.01, -0.02, 0.03, 0.04])
    f["event_timestamp"] = pd.date_range("2024-01-01", periods=4, freq="2D", tz="UTC")
    f["label_end_timestamp"] = f["event_timestamp"] + pd.Timedelta(days=2)
    per = metrics.strategy_returns(f, horizon=2, cost_bps=10.0)
    assert per["gross"].tolist() == pytest.approx([0.01, 0.02, 0.03, 0.04])
    assert per["turnover"].tolist() == [1.0, 2.0, 2.0, 0.0]
    # decisions every bar, labels 2 bars long: a position decided at t0 is held until t2
    g = _frame(prediction=[0.5, -9.0, -0.3, 9.0, 0.2], label=[0.01, 9.0, -0.02, 9.0, 0.03])
    g["label_end_timestamp"] = g["event_timestamp"] + pd.Timedelta(days=2)
    assert metrics.strategy_returns(g, horizon=2, cost_bps=0.0)["gross"].tolist() == pytest.approx([0.01, 0.02, 0.03])


def test_spread_in_points_is_the_cost_where_present():
    # EURUSD-like closes with 5 decimals: a point is 0.00001; 20 points at 1.1 cost 20e-5 / 2.2 per unit
    f = _frame(prediction=[1.0, 1.0], label=[0.001, 0.002], close=[1.10000, 1.10013], spread=[20, np.nan])
    per = metrics.strategy_returns(f, horizon=1, cost_bps=3.0)
    assert per["cost"].tolist() == pytest.approx([20e-5 / 2.2, 0.0])  # second decision: no trade
    f2 = _frame(prediction=[1.0, -1.0], label=[0.001, 0.002], close=[1.10000, 1.10013], spread=[20, np.nan])
    per2 = metrics.strategy_returns(f2, horizon=1, cost_bps=3.0)
    assert per2["cost"].tolist() == pytest.approx([20e-5 / 2.2, 2 * 3e-4])  # no spread: bps, reversal = 2 units


def test_point_drawdown_ic():
    assert metrics.infer_point([1.23456, 1.2345]) == pytest.approx(1e-5)
    assert metrics.infer_point([101.25, 100.5]) == pytest.approx(0.01)
    assert metrics.infer_point([100.0, 101.0]) == 1.0
    # equity 0, .1, -.1, -.05, -.15: the fall from .1 to -.15 is .25 in log terms
    assert metrics.max_drawdown([0.1, -0.2, 0.05, -0.1]) == pytest.approx(1 - math.exp(-0.25))
    x = np.arange(1.0, 11.0)
    assert metrics.rank_ic(x, x ** 3) == pytest.approx(1.0) and metrics.ic(x, x ** 3) < 0.99
    assert metrics.ic(x, -x) == pytest.approx(-1.0)
    assert metrics.icir([0.1, 0.2, 0.3]) == pytest.approx(2.0)
    assert metrics.hit_rate([1, -1, 1, 1], [0.5, 0.2, 0.0, 0.1]) == pytest.approx(2 / 3)  # the 0 label is skipped


def test_nulls_are_counted_and_handled_per_model():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    X[:10, 0] = np.nan  # 10 rows with a null feature
    X[:, 2] = np.nan  # a feature null everywhere (like spread on a sample without one)
    y = X[:, 1] + rng.normal(0, 0.1, 200)
    y[-4:] = np.nan  # 4 rows without a label
    for kind in ("lightgbm", "linear"):
        model, counts = estimators.fit(kind, X, y)
        assert (counts.rows, counts.label_null_rows) == (196, 4)
        assert counts.rows_with_null_features == 196 and counts.null_cells == 196 + 10
        p = estimators.predict(model, X)
        assert p.shape == (200,) and np.isfinite(p).all()  # every row predicted, nulls included
        assert metrics.ic(p[:-4], y[:-4]) > 0.9
        assert estimators.native_importance(model, kind, 3).argmax() == 1


def test_a_rows_prediction_does_not_depend_on_the_rest_of_the_batch():
    """Bit for bit, whatever else is predicted with it: one symbol online equals the same row in an
    offline batch (BLAS sums one row and many rows in different orders: not allowed to show)."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 42))
    X[::7, 5] = np.nan
    y = X[:, :5].sum(axis=1) + rng.normal(0, 0.1, 300)
    for kind in ("lightgbm", "linear"):
        model, _ = estimators.fit(kind, X, y)
        batch = estimators.predict(model, X)
        alone = np.array([estimators.predict(model, X[i:i + 1])[0] for i in range(len(X))])
        pairs = np.array([estimators.predict(model, X[[i, (i + 1) % len(X)]])[0] for i in range(len(X))])
        assert (alone == batch).all() and (pairs == batch).all(), kind
        if kind == "linear":  # still the ridge prediction, to round-off
            np.testing.assert_allclose(batch, model.predict(X), rtol=1e-12, atol=1e-12)


def test_evaluate_refuses_a_negative_or_missing_cost_and_no_shuffles():
    from mt5lab.errors import TrainingSetError
    from mt5lab.model.evaluate import evaluate

    f = _frame(prediction=[0.1] * 4, label=[0.01] * 4)
    for kwargs, rule in (({"cost_bps": -5.0}, "cost"), ({"cost_bps": float("nan")}, "cost"), ({"repeats": 0}, "repeats")):
        with pytest.raises(TrainingSetError, match=rule):
            evaluate(f, "fwd_return_5", **kwargs)
