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
