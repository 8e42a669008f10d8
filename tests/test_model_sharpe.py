"""PSR and DSR against the papers' own numbers, and hand-computed cases.

Expected values are written by hand, never computed by mt5lab:
- Bailey and López de Prado (2014), "The Deflated Sharpe Ratio", section "A numerical example": an
  annualized Sharpe of 2.5 selected from N = 100 trials whose annualized Sharpe ratios have variance
  1/2, over 5 years of daily returns (T = 1250, 250 a year), skewness -3, kurtosis 10. The paper
  finds an expected maximum (non-annualized) Sharpe of 0.1132 and DSR = 0.9004.
- Lo (2002) / Bailey and López de Prado (2012) under normal returns (skew 0, kurtosis 3):
  PSR = Φ(SR sqrt(n - 1) / sqrt(1 + SR²/2)); SR = 0.1, n = 101 gives Φ(0.997509) = 0.84074.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import mt5lab.model as model
from mt5lab.model.sharpe import moments


def test_deflated_sharpe_ratio_paper_example():
    sr = 2.5 / math.sqrt(250)  # 0.1581 per day
    var = 0.5 / 250  # variance of the trials' daily Sharpe ratios
    assert model.expected_max_sharpe(100, var) == pytest.approx(0.1132, abs=5e-5)
    dsr = model.deflated_sharpe_ratio(sr, n_obs=1250, n_trials=100, skew=-3.0, kurtosis=10.0, sharpe_variance=var)
    assert dsr == pytest.approx(0.9004, abs=5e-4)
    # the same number through the PSR with the paper's benchmark (its formula, section 3)
    assert model.probabilistic_sharpe_ratio(sr, 1250, -3.0, 10.0, benchmark=0.1132) == pytest.approx(0.9004, abs=5e-4)


def test_probabilistic_sharpe_ratio_normal_case_by_hand():
    assert model.probabilistic_sharpe_ratio(0.1, 101, 0.0, 3.0) == pytest.approx(0.84074, abs=2e-5)
    assert model.probabilistic_sharpe_ratio(0.3, 50, -1.0, 6.0, benchmark=0.3) == 0.5
    # negative skew and fat tails widen the Sharpe's standard error: a lower PSR for the same SR
    assert model.probabilistic_sharpe_ratio(0.1, 101, -3.0, 10.0) < model.probabilistic_sharpe_ratio(0.1, 101, 0.0, 3.0)


def test_one_trial_is_no_selection():
    assert model.expected_max_sharpe(1, 0.5) == 0.0
    assert model.deflated_sharpe_ratio(0.1, 101, 1, 0.0, 3.0, 0.0) == model.probabilistic_sharpe_ratio(0.1, 101, 0.0, 3.0)
    # more trials, higher bar
    assert model.expected_max_sharpe(1000, 0.002) > model.expected_max_sharpe(10, 0.002) > 0


def test_per_observation_sharpe_and_raw_kurtosis():
    assert model.sharpe_ratio([1.0, 2.0, 3.0, 4.0]) == pytest.approx(2.5 / 1.2909944, rel=1e-6)
    assert math.isnan(model.sharpe_ratio([1.0]))
    rng = np.random.default_rng(7)
    skew, kurt = moments(rng.normal(size=200_000))
    assert abs(skew) < 0.02 and kurt == pytest.approx(3.0, abs=0.05)  # non-excess: normal = 3


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="excess"):
        model.probabilistic_sharpe_ratio(1.0, 100, 2.0, 0.0)  # an excess kurtosis of 0 passed as raw
    with pytest.raises(ValueError, match="n_obs"):
        model.probabilistic_sharpe_ratio(0.1, 1, 0.0, 3.0)
    with pytest.raises(ValueError, match="n_trials"):
        model.deflated_sharpe_ratio(0.1, 100, 0, 0.0, 3.0, 0.1)
