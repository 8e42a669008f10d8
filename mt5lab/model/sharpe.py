"""Sharpe ratio, probabilistic Sharpe ratio (PSR) and deflated Sharpe ratio (DSR).

Conventions, everywhere in :mod:`mt5lab.model`:

- **Per-observation Sharpe**: ``mean(r) / std(r, ddof=1)`` of the strategy's returns per holding
  period, *not annualized* (multiply by ``sqrt(periods per year)`` to annualize for display only).
- **Kurtosis is non-excess**: a normal distribution has kurtosis 3 (``scipy.stats.kurtosis(...,
  fisher=False)``). Skewness and kurtosis are the sample moments (``bias=True``), as in the papers.

Formulas:

- PSR, Bailey and López de Prado (2012), "The Sharpe Ratio Efficient Frontier", Journal of Risk
  15(2), eq. (11)::

      PSR(SR*) = Φ( (SR - SR*) * sqrt(n - 1) / sqrt(1 - γ3 * SR + (γ4 - 1) / 4 * SR²) )

- DSR, Bailey and López de Prado (2014), "The Deflated Sharpe Ratio: Correcting for Selection
  Bias, Backtest Overfitting and Non-Normality", Journal of Portfolio Management 40(5), eq. (2):
  the PSR against the expected maximum Sharpe of ``N`` independent trials with no skill::

      SR0 = sqrt(V[SR_n]) * ((1 - γ) Φ⁻¹(1 - 1/N) + γ Φ⁻¹(1 - 1/(N e)))      γ = 0.5772... (Euler)
      DSR = PSR(SR0)

  With one trial there is no selection: ``SR0 = 0`` and the DSR is the PSR against zero.
"""

from __future__ import annotations

import math

import numpy as np

EULER_GAMMA = 0.5772156649015329


def _norm_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _norm_ppf(p: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(p))


def sharpe_ratio(returns) -> float:
    """Per-observation Sharpe of ``returns`` (1-d, any unit of return per period; NaN ignored).

    Returns NaN for fewer than 2 observations or a zero standard deviation.
    """
    r = np.asarray(returns, dtype=float)
    r = r[np.isfinite(r)]
    if r.size < 2:
        return float("nan")
    sd = r.std(ddof=1)
    return float(r.mean() / sd) if sd > 0 else float("nan")


def moments(returns) -> tuple[float, float]:
    """``(skewness, kurtosis)`` of ``returns``: sample moments, kurtosis non-excess (normal = 3).

    A constant series has no defined moments: ``(0.0, 3.0)`` (the normal values, which make the PSR
    of Lo (2002) under normality).
    """
    from scipy.stats import kurtosis, skew

    r = np.asarray(returns, dtype=float)
    r = r[np.isfinite(r)]
    if r.size < 3 or r.std() == 0:
        return 0.0, 3.0
    return float(skew(r, bias=True)), float(kurtosis(r, fisher=False, bias=True))


def probabilistic_sharpe_ratio(sharpe: float, n_obs: int, skew: float, kurtosis: float,
                               benchmark: float = 0.0) -> float:
    """The probability that the true Sharpe exceeds ``benchmark`` given an observed ``sharpe``.

    Args:
        sharpe: observed per-observation (non-annualized) Sharpe ratio.
        n_obs: number of return observations (``n >= 2``).
        skew: skewness of the returns (γ3).
        kurtosis: kurtosis of the returns, non-excess (γ4; normal = 3).
        benchmark: the Sharpe to beat (SR*), per observation.

    Returns a probability in [0, 1]; NaN when ``sharpe`` is NaN. Raises ``ValueError`` for
    ``n_obs < 2`` or a non-positive variance term ``1 - γ3 SR + (γ4 - 1)/4 SR²``.
    Source: Bailey and López de Prado (2012), eq. (11).
    """
    if n_obs < 2:
        raise ValueError(f"n_obs must be at least 2, got {n_obs}")
    if not math.isfinite(sharpe):
        return float("nan")
    var = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe ** 2
    if var <= 0:
        raise ValueError(f"PSR undefined: 1 - skew*SR + (kurtosis-1)/4*SR^2 = {var:.4g} <= 0 "
                         f"(SR {sharpe}, skew {skew}, kurtosis {kurtosis}: is the kurtosis excess, not raw?)")
    return _norm_cdf((sharpe - benchmark) * math.sqrt(n_obs - 1) / math.sqrt(var))


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """Expected maximum of ``n_trials`` independent per-observation Sharpe ratios whose true value is
    0 and whose estimates have variance ``sharpe_variance`` (Bailey and López de Prado 2014, eq. 2,
    from the false strategy theorem). 0 for a single trial. Raises ``ValueError`` for
    ``n_trials < 1`` or a negative variance."""
    if n_trials < 1:
        raise ValueError(f"n_trials must be at least 1, got {n_trials}")
    if sharpe_variance < 0 or not math.isfinite(sharpe_variance):
        raise ValueError(f"sharpe_variance must be finite and >= 0, got {sharpe_variance}")
    if n_trials == 1:
        return 0.0
    z1 = _norm_ppf(1.0 - 1.0 / n_trials)
    z2 = _norm_ppf(1.0 - 1.0 / (n_trials * math.e))
    return math.sqrt(sharpe_variance) * ((1.0 - EULER_GAMMA) * z1 + EULER_GAMMA * z2)


def deflated_sharpe_ratio(sharpe: float, n_obs: int, n_trials: int, skew: float, kurtosis: float,
                          sharpe_variance: float) -> float:
    """The PSR of ``sharpe`` against the expected maximum Sharpe of ``n_trials`` unskilled trials.

    Args:
        sharpe: the selected strategy's observed per-observation Sharpe.
        n_obs: its number of return observations.
        n_trials: how many strategies were tried (in mt5lab: the runs recorded in the experiment).
        skew, kurtosis: of the selected strategy's returns (kurtosis non-excess).
        sharpe_variance: variance of the per-observation Sharpe ratios across the trials.

    Returns a probability in [0, 1] (significant at 5 % when above 0.95). Raises ``ValueError`` as
    :func:`probabilistic_sharpe_ratio` and :func:`expected_max_sharpe` do.
    Source: Bailey and López de Prado (2014), eq. (2).
    """
    return probabilistic_sharpe_ratio(sharpe, n_obs, skew, kurtosis,
                                      benchmark=expected_max_sharpe(n_trials, sharpe_variance))
