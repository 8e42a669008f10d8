"""PSI: hand-computed values, the thresholds, windows, and the 42-feature table."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from mt5lab.catalog import FEATURE_NAMES
from mt5lab.research.monitoring import EPS, MIN_COUNT, drift_summary, psi, psi_table, status, windows


def test_identical_samples_have_zero_psi():
    x = np.arange(1000.0)
    assert psi(x, x) == 0.0


def test_all_mass_in_top_decile_matches_the_formula():
    ref = np.arange(100.0)  # deciles: 10 values per bin
    cur = np.full(50, 1000.0)  # above every reference value: the open-ended last bin
    expected = 9 * (EPS - 0.1) * math.log(EPS / 0.1) + (1 - 0.1) * math.log(1 / 0.1)
    assert psi(ref, cur) == pytest.approx(expected, rel=1e-12)


def test_discrete_feature_binned_by_value():
    ref = np.array([0] * 90 + [100] * 10, dtype=float)  # cdl_doji-like: 90% zeros
    cur = np.array([0] * 50 + [100] * 50, dtype=float)
    expected = (0.5 - 0.9) * math.log(0.5 / 0.9) + (0.5 - 0.1) * math.log(0.5 / 0.1)
    assert psi(ref, cur) == pytest.approx(expected, rel=1e-12)


def test_unseen_category_goes_to_other_bin():
    ref = np.array([0.0] * 100)
    cur = np.array([0.0] * 50 + [-100.0] * 50)
    expected = (0.5 - 1.0) * math.log(0.5 / 1.0) + (0.5 - EPS) * math.log(0.5 / EPS)
    assert psi(ref, cur) == pytest.approx(expected, rel=1e-12)


def test_nulls_are_dropped_and_small_windows_are_insufficient():
    ref = np.r_[np.arange(100.0), [np.nan] * 50]
    assert psi(ref, np.arange(100.0)) == pytest.approx(0.0, abs=1e-12)
    short = np.arange(MIN_COUNT - 1.0)
    assert math.isnan(psi(np.arange(100.0), short))
    assert status(float("nan")) == "insufficient data"


def test_a_shifted_normal_is_flagged_and_a_fresh_sample_is_not():
    rng = np.random.default_rng(7)
    ref = rng.normal(0, 1, 5000)
    assert psi(ref, rng.normal(0, 1, 2000)) < 0.1
    assert psi(ref, rng.normal(1, 1, 2000)) > 0.25


def test_status_thresholds():
    assert [status(v) for v in (0.0, 0.0999, 0.1, 0.2499, 0.25, 3.0)] == [
        "stable", "stable", "moderate", "moderate", "drift", "drift"]


def _frame(n: int) -> pl.DataFrame:
    t0 = datetime(2020, 1, 1, tzinfo=UTC)
    rng = np.random.default_rng(1)
    data = {"symbol": ["X"] * n, "time": [t0 + timedelta(days=i) for i in range(n)]}
    for name in FEATURE_NAMES:
        data[name] = rng.normal(0, 1, n)
    data["close"] = np.r_[rng.normal(0, 1, n - 500), rng.normal(5, 1, 500)]  # the last 500 bars drift
    data["spread"] = [None] * n
    return pl.DataFrame(data)


def test_windows_split_and_refuse_overlap():
    df = _frame(500)
    ref, cur = windows(df, recent_bars=100)
    assert ref.height == 300 and cur.height == 100
    assert cur["time"].min() > ref["time"].max()
    with pytest.raises(ValueError, match="overlaps"):
        windows(df, recent_bars=300)
    ref2, _ = windows(df, reference_end=datetime(2020, 2, 1, tzinfo=UTC), recent_bars=100)
    assert ref2.height == 31


def test_psi_table_flags_exactly_the_shifted_feature():
    # sampling noise alone gives PSI ~ (bins - 1) * (1/n_ref + 1/n_cur) ~ 0.02 here, far below 0.1
    ref, cur = windows(_frame(3000), recent_bars=500)
    table = psi_table(ref, cur)
    assert list(table["feature"]) == list(FEATURE_NAMES)
    summary = drift_summary(table)
    assert summary["drift"] == ["close"]
    assert summary["insufficient"] == ["spread"]
    assert summary["moderate"] == []
    assert sum(summary["counts"].values()) == 42


def test_a_constant_feature_is_insufficient_data_not_stable():
    zeros = np.zeros(200)
    assert math.isnan(psi(zeros, zeros)) and status(psi(zeros, zeros)) == "insufficient data"
    assert psi(zeros, np.full(200, 5.0)) > DRIFT_LEVEL  # two different constants: a shift, measured
    df = _frame(1000).with_columns(tick_volume=pl.lit(0.0))
    ref, cur = windows(df, recent_bars=200)
    table = psi_table(ref, cur).set_index("feature")
    assert table.at["tick_volume", "status"] == "insufficient data"
    assert math.isnan(table.at["tick_volume", "psi"])


DRIFT_LEVEL = 0.25


def test_kind_separates_level_from_scale_free_features():
    from mt5lab.research.monitoring import kind

    level = {"open", "close", "sma_200", "ema_12", "bb_upper_20", "atr_14", "macd", "obv", "ad", "tick_volume",
             "volume_sma_20", "stddev_20"}
    free = {"log_return_1", "rsi_14", "stoch_k", "roc_10", "natr_14", "bb_width_20", "body_ratio", "cdl_doji",
            "mfi_14", "co_ratio"}
    assert {f for f in level | free if kind(f) == "level"} == level


def test_ks_statistic_by_hand():
    from mt5lab.research.monitoring import ks_statistic

    # F_ref - F_cur reaches 0.5 at x = 99: 100/100 of the reference against 50/100 of the recent window
    assert ks_statistic(np.arange(100.0), np.arange(50.0, 150.0)) == 0.5
    assert ks_statistic(np.arange(100.0), np.arange(1000.0, 1100.0)) == 1.0
    assert math.isnan(ks_statistic(np.arange(10.0), np.arange(100.0)))


def test_ranked_breaks_psi_ties_by_ks_and_keeps_kinds_apart():
    import pandas as pd

    from mt5lab.research.monitoring import ranked

    t = pd.DataFrame([
        {"feature": "close", "kind": "level", "psi": 9.2, "ks": 1.0},
        {"feature": "sma_5", "kind": "level", "psi": 9.2, "ks": 0.97},
        {"feature": "obv", "kind": "level", "psi": 9.2, "ks": 0.99},
        {"feature": "rsi_14", "kind": "scale-free", "psi": 0.4, "ks": 0.2},
        {"feature": "log_return_1", "kind": "scale-free", "psi": 0.4, "ks": 0.3},
        {"feature": "stoch_k", "kind": "scale-free", "psi": None, "ks": None},
    ])
    assert list(ranked(t, "level")["feature"]) == ["close", "obv", "sma_5"]
    assert list(ranked(t, "scale-free")["feature"]) == ["log_return_1", "rsi_14"]
    assert list(ranked(t, "level", top=1)["feature"]) == ["close"]


def test_reference_end_before_the_data_is_an_error():
    df = _frame(500)
    with pytest.raises(ValueError, match="not after the first bar .2020-01-01 00:00 UTC.: the reference window"):
        windows(df, reference_end=datetime(2019, 6, 1, tzinfo=UTC), recent_bars=100)
    with pytest.raises(ValueError, match="empty"):
        windows(df, reference_end=datetime(2020, 1, 1, tzinfo=UTC), recent_bars=100)


def test_psi_figure_draws_lengths_on_a_linear_axis():
    import matplotlib

    matplotlib.use("Agg")
    from mt5lab.plots.monitoring import drift_detail_figure, psi_figure

    ref, cur = windows(_frame(3000), recent_bars=500)
    table = psi_table(ref, cur)
    fig = psi_figure(table, "t")
    ax = fig.axes[0]
    assert ax.get_xscale() == "linear"
    widths = [p.get_width() for p in ax.patches][: len(table)]
    expected = table["psi"].astype(float).fillna(0.0).tolist()
    assert widths == pytest.approx(expected)  # bars drawn in catalog order, length = PSI
    labels = [t.get_text() for t in ax.texts]
    assert labels[FEATURE_NAMES.index("spread")] == "insufficient data"
    detail = drift_detail_figure(ref, cur, table, top=3)
    titles = [a.get_title() for a in detail.axes if a.get_visible()]
    assert titles[0].startswith("scale-free: ") and titles[3].startswith("level: close")
