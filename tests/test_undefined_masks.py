"""``mt5lab.features.undefined.window_any``: the all-symbols window never reaches into the previous
symbol; checked against a plain per-row loop on random flags and random symbol lengths."""

from __future__ import annotations

import numpy as np
import pytest

from mt5lab.features.undefined import window_any


@pytest.mark.parametrize("seed", range(20))
def test_window_any_equals_a_per_row_loop(seed):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 40, rng.integers(1, 8))
    flag = rng.random(int(lengths.sum())) < rng.choice([0.02, 0.2, 0.7])
    first = np.repeat(np.cumsum(lengths) - lengths, lengths)
    for n in (1, 3, 14, 50):
        want = np.array([flag[max(i - n + 1, first[i]):i + 1].any() for i in range(len(flag))])
        assert np.array_equal(window_any(flag, n, first), want), (seed, n)
