"""Every computed feature against an independent numpy reference, on both real samples.

The references below never call TA-Lib. They restate each definition from the catalog (and, where
TA-Lib has its own seeding or edge-case rules, those rules, documented next to the code), and
``compute_features`` must agree with them within ``rtol=1e-9`` on every published row. It must also
publish nulls on exactly the first ``Feature.warmup`` rows and values on every later row, except
where the inputs do not allow one (a ratio whose denominator is zero, or a 0/0 that TA-Lib writes as
0: flat stochastic window, MFI window without money flow, RSI without gains or losses; the
reference marks those NaN, which is the catalog's rule, see ``tests/test_domains.py``).

The absolute tolerance, for values that cross zero, is ``1e-12`` times the feature's scale (close for
price features, 100 for percent, the trailing maximum volume for volume features, 1 for ratios):
tighter than the 1e-9 suggested, since the measured differences are float round-off (<= 1e-14 of
the scale).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import polars as pl
import pytest
from numpy.lib.stride_tricks import sliding_window_view as windows

from mt5lab.bars.samples import load_sample
from mt5lab.catalog import BY_NAME, FEATURES, MAX_WARMUP
from mt5lab.features.compute import compute_features

RTOL = 1e-9
ATOL_REL_TO_SCALE = 1e-12
PASSTHROUGH = ("open", "high", "low", "close", "tick_volume", "real_volume", "spread")
COMPUTED = [f.name for f in FEATURES if f.name not in PASSTHROUGH]
SAMPLES = ("GOOG", "EURUSD")


# --------------------------------------------------------------------------------------------------
# Independent references (numpy only)
# --------------------------------------------------------------------------------------------------

def _nan(n: int) -> np.ndarray:
    return np.full(n, np.nan)


def ref_sma(x: np.ndarray, n: int) -> np.ndarray:
    """Mean of the last ``n`` values (a fresh sum per window, no running total)."""
    out = _nan(len(x))
    if len(x) >= n:
        out[n - 1:] = windows(x, n).mean(axis=1)
    return out


def ref_pstd(x: np.ndarray, n: int) -> np.ndarray:
    """Population standard deviation over the last ``n`` values (two-pass, per window)."""
    out = _nan(len(x))
    if len(x) >= n:
        out[n - 1:] = windows(x, n).std(axis=1, ddof=0)
    return out


def ref_ema_from(x: np.ndarray, start: int, seed: float, alpha: float) -> np.ndarray:
    """``e[start] = seed``, then ``e[i] = alpha * x[i] + (1 - alpha) * e[i-1]``."""
    out = _nan(len(x))
    e = seed
    out[start] = e
    for i in range(start + 1, len(x)):
        e = alpha * x[i] + (1.0 - alpha) * e
        out[i] = e
    return out


def ref_ema(x: np.ndarray, n: int) -> np.ndarray:
    """TA-Lib's EMA: seeded with the SMA of the first ``n`` values at index ``n-1``, alpha 2/(n+1)."""
    if len(x) < n:
        return _nan(len(x))
    return ref_ema_from(x, n - 1, float(np.mean(x[:n])), 2.0 / (n + 1))


def ref_rsi(c: np.ndarray, n: int = 14, quiet: int | None = None) -> np.ndarray:
    """Wilder RSI: the first average gain/loss is the plain mean of the first ``n`` changes (value at
    index ``n``), then ``avg = (avg * (n-1) + current) / n``. RSI = 100 G / (G + L).

    0/0 is null (the catalog's rule; TA-Lib writes 0): G + L == 0, and also a close unchanged over
    the last ``quiet`` changes (the catalog's warm-up of ``rsi_14``: G + L then holds only
    remainders of moves older than the warm-up)."""
    out = _nan(len(c))
    d = np.diff(c)
    if len(d) < n:
        return out
    gain, loss = np.where(d > 0, d, 0.0), np.where(d < 0, -d, 0.0)
    g, lo = gain[:n].mean(), loss[:n].mean()

    def rsi(g, lo):
        return np.nan if g + lo == 0 else 100.0 * g / (g + lo)

    out[n] = rsi(g, lo)
    for i in range(n + 1, len(c)):
        g = (g * (n - 1) + gain[i - 1]) / n
        lo = (lo * (n - 1) + loss[i - 1]) / n
        out[i] = rsi(g, lo)
    if quiet is not None and len(d) >= quiet:
        out[quiet:][(windows(d, quiet) == 0).all(axis=1)] = np.nan
    return out


def ref_macd(c: np.ndarray, fast: int = 12, slow: int = 26, signal: int = 9):
    """TA-Lib's MACD seeding.

    The slow EMA is an ordinary SMA-seeded EMA (first value at ``slow-1`` = 25). The fast EMA is *not*
    seeded at ``fast-1``: TA-Lib starts it where the slow one starts, seeded with the SMA of the
    ``fast`` values ending there (closes 14..25), so the MACD line begins at index 25. The signal is an
    SMA-seeded EMA9 of the MACD line (seed = mean of MACD[25..33], first value at 33); all three outputs
    start at 33.
    """
    m = _nan(len(c))
    start = slow - 1
    s_start = start + signal - 1
    if len(c) <= s_start:
        return m, m.copy(), m.copy()
    slow_e = ref_ema(c, slow)
    fast_e = ref_ema_from(c, start, float(np.mean(c[start - fast + 1:start + 1])), 2.0 / (fast + 1))
    m = fast_e - slow_e
    sig = ref_ema_from(m, s_start, float(np.mean(m[start:s_start + 1])), 2.0 / (signal + 1))
    m[:s_start] = np.nan
    return m, sig, m - sig


def ref_stoch(h, lo, c, k: int = 14, sk: int = 3, sd: int = 3):
    """fastK = 100 (c - LL_k) / (HH_k - LL_k), slowK = SMA3(fastK), slowD = SMA3(slowK). TA-Lib
    aligns both outputs at slowD's first index (17). HH == LL is 0/0: null (TA-Lib writes 0), and so
    is every mean that contains it."""
    n = len(c)
    fastk = _nan(n)
    if n >= k:
        hh, ll = windows(h, k).max(axis=1), windows(lo, k).min(axis=1)
        rng = hh - ll
        with np.errstate(divide="ignore", invalid="ignore"):
            fastk[k - 1:] = np.where(rng > 0, 100.0 * (c[k - 1:] - ll) / rng, np.nan)
    slowk, slowd = _nan(n), _nan(n)
    a = k - 1 + sk - 1
    if n > a:
        slowk[a:] = windows(fastk[k - 1:], sk).mean(axis=1)
    b = a + sd - 1
    if n > b:
        slowd[b:] = windows(slowk[a:], sd).mean(axis=1)
    slowk[:b] = np.nan
    return slowk, slowd


def ref_roc(c: np.ndarray, n: int = 10) -> np.ndarray:
    """100 (c / c[-n] - 1); a zero divisor is null (TA-Lib writes 0)."""
    out = _nan(len(c))
    with np.errstate(divide="ignore", invalid="ignore"):
        out[n:] = np.where(c[:-n] != 0, 100.0 * (c[n:] / c[:-n] - 1.0), np.nan)
    return out


def ref_atr(h, lo, c, n: int = 14) -> np.ndarray:
    """True range uses the previous close (none for bar 0). ATR[n] = mean(TR[1..n]), then Wilder."""
    out = _nan(len(c))
    if len(c) <= n:
        return out
    tr = _nan(len(c))
    pc = c[:-1]
    tr[1:] = np.maximum(h[1:] - lo[1:], np.maximum(np.abs(h[1:] - pc), np.abs(lo[1:] - pc)))
    a = tr[1:n + 1].mean()
    out[n] = a
    for i in range(n + 1, len(c)):
        a = (a * (n - 1) + tr[i]) / n
        out[i] = a
    return out


def ref_obv(c, v) -> np.ndarray:
    """TA-Lib's OBV starts at the first bar's volume, then adds/subtracts volume on up/down closes."""
    out = np.empty(len(c))
    acc = v[0]
    out[0] = acc
    for i in range(1, len(c)):
        if c[i] > c[i - 1]:
            acc += v[i]
        elif c[i] < c[i - 1]:
            acc -= v[i]
        out[i] = acc
    return out


def ref_ad(h, lo, c, v) -> np.ndarray:
    """Cumulative close-location value times volume; a bar with high == low adds 0."""
    rng = h - lo
    with np.errstate(divide="ignore", invalid="ignore"):
        clv = np.where(rng != 0, ((c - lo) - (h - c)) / rng, 0.0)
    return np.cumsum(clv * v)


def ref_adosc(h, lo, c, v, fast: int = 3, slow: int = 10) -> np.ndarray:
    """EMA3 - EMA10 of the AD line. TA-Lib seeds *both* EMAs with the first AD value (bar 0, not an
    SMA) and publishes from index ``slow - 1``."""
    line = ref_ad(h, lo, c, v)
    out = (ref_ema_from(line, 0, line[0], 2.0 / (fast + 1))
           - ref_ema_from(line, 0, line[0], 2.0 / (slow + 1)))
    out[:slow - 1] = np.nan
    return out


def ref_mfi(h, lo, c, v, n: int = 14) -> np.ndarray:
    """Money flow index on the typical price (h + l + c) / 3.

    A bar's flow tp * vol is positive when tp rose, negative when it fell, none when unchanged. As in
    TA-Lib 0.8, "unchanged" means equal within 1e-14 of |tp| + |tp_prev| (a tie computed with a
    different rounding is still a tie). A window without any flow is 0/0: null (TA-Lib writes 0).
    """
    out = _nan(len(c))
    tp = (h + lo + c) / 3.0
    d = tp[1:] - tp[:-1]
    flat = np.abs(d) <= 1e-14 * (np.abs(tp[1:]) + np.abs(tp[:-1]))
    flow = tp[1:] * v[1:]
    pos = np.where(~flat & (d > 0), flow, 0.0)
    neg = np.where(~flat & (d < 0), flow, 0.0)
    if len(c) > n:
        p, m = windows(pos, n).sum(axis=1), windows(neg, n).sum(axis=1)
        tot = p + m
        with np.errstate(divide="ignore", invalid="ignore"):
            out[n:] = np.where(tot > 0, 100.0 * p / tot, np.nan)
    return out


def ref_doji(o, h, lo, c, period: int = 10, factor: float = 0.1) -> np.ndarray:
    """TA-Lib's doji: |c - o| <= 0.1 * mean(high - low) over the *previous* 10 candles -> 100."""
    out = _nan(len(c))
    if len(c) > period:
        avg_prev = windows(h - lo, period).mean(axis=1)[:-1]
        out[period:] = np.where(np.abs(c[period:] - o[period:]) <= factor * avg_prev, 100.0, 0.0)
    return out


def ref_engulfing_talib(o, c) -> np.ndarray:
    """TA-Lib's CDLENGULFING, graded: +-100, or +-80 when the two bodies share an end.

    Colour is white when c >= o. Bullish: white after black, with (c >= o_prev and o < c_prev) or
    (c > o_prev and o <= c_prev); bearish mirrored. First value at index 2 (TA-Lib's lookback).
    """
    out = _nan(len(c))
    color = np.where(c >= o, 1, -1)
    for i in range(2, len(c)):
        bull = color[i] == 1 and color[i - 1] == -1 and (
            (c[i] >= o[i - 1] and o[i] < c[i - 1]) or (c[i] > o[i - 1] and o[i] <= c[i - 1]))
        bear = color[i] == -1 and color[i - 1] == 1 and (
            (o[i] >= c[i - 1] and c[i] < o[i - 1]) or (o[i] > c[i - 1] and c[i] <= o[i - 1]))
        if bull or bear:
            full = o[i] != c[i - 1] and c[i] != o[i - 1]
            out[i] = color[i] * (100 if full else 80)
        else:
            out[i] = 0
    return out


def effective_volume_ref(bars: pl.DataFrame) -> np.ndarray:
    rv = bars["real_volume"].fill_null(0).to_numpy().astype(np.float64)
    tv = bars["tick_volume"].fill_null(0).to_numpy().astype(np.float64)
    return np.where(rv > 0, rv, tv)


def reference_features(bars: pl.DataFrame) -> dict[str, np.ndarray]:
    o, h, lo, c = (bars[k].to_numpy().astype(np.float64) for k in ("open", "high", "low", "close"))
    v = effective_volume_ref(bars)
    r: dict[str, np.ndarray] = {}
    for n in (5, 10, 20, 50, 200):
        r[f"sma_{n}"] = ref_sma(c, n)
    for n in (12, 26, 50):
        r[f"ema_{n}"] = ref_ema(c, n)
    r["rsi_14"] = ref_rsi(c, quiet=BY_NAME["rsi_14"].warmup)
    r["macd"], r["macd_signal"], r["macd_hist"] = ref_macd(c)
    r["stoch_k"], r["stoch_d"] = ref_stoch(h, lo, c)
    r["roc_10"] = ref_roc(c)
    r["atr_14"] = ref_atr(h, lo, c)
    with np.errstate(divide="ignore", invalid="ignore"):  # close 0 (invalid bar): null, as TA-Lib's 0
        r["natr_14"] = np.where(c != 0, 100.0 * r["atr_14"] / c, np.nan)
    mid, sd = ref_sma(c, 20), ref_pstd(c, 20)
    r["bb_upper_20"], r["bb_middle_20"], r["bb_lower_20"] = mid + 2 * sd, mid, mid - 2 * sd
    r["bb_width_20"] = 4 * sd / mid
    r["stddev_20"] = sd
    r["obv"] = ref_obv(c, v)
    r["ad"] = ref_ad(h, lo, c, v)
    r["adosc"] = ref_adosc(h, lo, c, v)
    r["mfi_14"] = ref_mfi(h, lo, c, v)
    r["volume_sma_20"] = ref_sma(v, 20)
    lr = _nan(len(c))
    lr[1:] = np.log1p((c[1:] - c[:-1]) / c[:-1])
    r["log_return_1"] = lr
    rng = h - lo
    r["hl_range"] = rng / c
    r["co_ratio"] = (c - o) / o
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = rng != 0
        r["body_ratio"] = np.where(ok, np.abs(c - o) / rng, np.nan)
        r["upper_shadow"] = np.where(ok, (h - np.maximum(o, c)) / rng, np.nan)
        r["lower_shadow"] = np.where(ok, (np.minimum(o, c) - lo) / rng, np.nan)
    r["cdl_doji"] = ref_doji(o, h, lo, c)
    # The catalog's domain is -100, 0, 100: TA-Lib's +-80 grade counts as an engulfing.
    r["cdl_engulfing"] = np.sign(ref_engulfing_talib(o, c)) * 100
    assert set(r) == set(COMPUTED)
    return r


def scale_of(name: str, bars: pl.DataFrame) -> np.ndarray | float:
    """Per-row magnitude a feature is measured against (for the absolute tolerance)."""
    kind = BY_NAME[name].scale
    if kind == "price":
        return np.abs(bars["close"].to_numpy())
    if kind == "percent":
        return 100.0
    if kind == "volume":
        v = np.concatenate([np.zeros(MAX_WARMUP), effective_volume_ref(bars)])
        return windows(v, MAX_WARMUP + 1).max(axis=1)
    return 1.0


# --------------------------------------------------------------------------------------------------
# Fixtures (cached: each sample is computed once)
# --------------------------------------------------------------------------------------------------

@cache
def _sample(name: str):
    bars = load_sample(name)
    out = compute_features(bars, bars["timeframe"][0])
    return bars, out, reference_features(bars)


def _values(out: pl.DataFrame, name: str) -> np.ndarray:
    return out[name].cast(pl.Float64).to_numpy()


def assert_matches_reference(name: str, got: np.ndarray, ref: np.ndarray, bars: pl.DataFrame) -> None:
    warmup = BY_NAME[name].warmup
    idx = np.arange(len(got))
    expected_published = (idx >= warmup) & ~np.isnan(ref)
    published = ~np.isnan(got)
    assert not np.isinf(got).any(), f"{name}: inf published"
    wrong = np.flatnonzero(published != expected_published)
    assert wrong.size == 0, (
        f"{name}: null pattern differs from warm-up {warmup} at rows {wrong[:10].tolist()} "
        f"(published there: {published[wrong[:10]].tolist()})")
    if BY_NAME[name].dtype == "Int64":
        np.testing.assert_array_equal(got[published], ref[published], err_msg=name)
        return
    scale = scale_of(name, bars)
    atol = ATOL_REL_TO_SCALE * (scale[published] if isinstance(scale, np.ndarray) else scale)
    # assert_allclose takes a scalar atol; compare |a - b| <= atol + rtol * |b| by hand, per row.
    a, b = got[published], ref[published]
    bad = np.abs(a - b) > atol + RTOL * np.abs(b)
    if bad.any():
        i = np.flatnonzero(bad)[0]
        raise AssertionError(
            f"{name}: {bad.sum()} rows differ, first at row {idx[published][i]}: "
            f"computed {a[i]!r}, reference {b[i]!r}")


# --------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", COMPUTED)
@pytest.mark.parametrize("symbol", SAMPLES)
def test_feature_matches_independent_reference(symbol, name):
    bars, out, ref = _sample(symbol)
    assert out.height == bars.height
    assert_matches_reference(name, _values(out, name), ref[name], bars)


@pytest.mark.parametrize("symbol", SAMPLES)
def test_zero_crossing_features_match_on_rtol_alone(symbol):
    """Where values are not near zero, the features that need an atol match on rtol alone."""
    bars, out, ref = _sample(symbol)
    for name in ("macd", "macd_signal", "macd_hist", "adosc", "roc_10", "log_return_1", "co_ratio"):
        got, r = _values(out, name), ref[name]
        ok = ~np.isnan(got) & (np.abs(r) > 1e-3 * np.nanmax(np.abs(r)))
        np.testing.assert_allclose(got[ok], r[ok], rtol=RTOL, atol=0, err_msg=name)


@pytest.mark.parametrize("symbol", SAMPLES)
def test_bar_columns_pass_through(symbol):
    bars, out, _ = _sample(symbol)
    for name in PASSTHROUGH:
        assert out[name].dtype == (pl.Float64 if BY_NAME[name].dtype == "Float64" else pl.Int64)
        assert out[name].equals(bars[name].cast(out[name].dtype)), name
    assert out["symbol"].equals(bars["symbol"])
    assert out["time"].equals(bars["time"])


@pytest.mark.parametrize("symbol", SAMPLES)
def test_pattern_value_domains(symbol):
    _, out, _ = _sample(symbol)
    assert set(out["cdl_doji"].drop_nulls().unique().to_list()) <= {0, 100}
    assert set(out["cdl_engulfing"].drop_nulls().unique().to_list()) <= {-100, 0, 100}
    # both samples contain both directions and dojis, so the comparisons above are not vacuous
    assert {-100, 100} <= set(out["cdl_engulfing"].drop_nulls().to_list())
    assert 100 in out["cdl_doji"].to_list()


def test_samples_exercise_both_volume_paths():
    goog, eur = load_sample("GOOG"), load_sample("EURUSD")
    assert (goog["real_volume"] > 0).all() and (goog["tick_volume"] == 0).all()
    assert (eur["real_volume"] == 0).all() and (eur["tick_volume"] > 0).all()
    # and the volume features follow the path: GOOG on real volume, EURUSD on ticks
    for bars, col in ((goog, "real_volume"), (eur, "tick_volume")):
        out = compute_features(bars, bars["timeframe"][0])
        v = bars[col].to_numpy().astype(float)
        np.testing.assert_allclose(out["volume_sma_20"].to_numpy()[19:], windows(v, 20).mean(axis=1),
                                   rtol=1e-12)
        assert out["obv"][0] == v[0]


# --------------------------------------------------------------------------------------------------
# Synthetic bars for the edge cases
# --------------------------------------------------------------------------------------------------

def synthetic(o, h, lo, c, tick_volume=None, real_volume=None, symbol="SYN") -> pl.DataFrame:
    n = len(c)
    t0 = np.datetime64("2024-01-01T00:00:00", "us")
    tv = [100 + i for i in range(n)] if tick_volume is None else tick_volume
    rv = [0] * n if real_volume is None else real_volume
    return pl.DataFrame({
        "symbol": [symbol] * n,
        "timeframe": ["H1"] * n,
        "time": pl.Series(t0 + np.arange(n) * np.timedelta64(1, "h")).dt.replace_time_zone("UTC"),
        "open": np.asarray(o, float), "high": np.asarray(h, float),
        "low": np.asarray(lo, float), "close": np.asarray(c, float),
        "tick_volume": pl.Series(tv, dtype=pl.Int64),
        "spread": pl.Series([None] * n, dtype=pl.Int64),
        "real_volume": pl.Series(rv, dtype=pl.Int64),
    })


def test_effective_volume_is_chosen_per_row():
    """real_volume where > 0, else tick_volume; a null real_volume counts as absent."""
    base = load_sample("GOOG").head(300)
    n = base.height
    rng = np.random.default_rng(7)
    real = base["real_volume"].to_list()
    for i in rng.choice(n, 90, replace=False):
        real[i] = 0
    for i in rng.choice(n, 30, replace=False):
        real[i] = None
    ticks = rng.integers(1_000, 50_000, n).tolist()
    bars = base.with_columns(pl.Series("real_volume", real, dtype=pl.Int64),
                             pl.Series("tick_volume", ticks, dtype=pl.Int64))
    v = effective_volume_ref(bars)
    used_ticks = np.array([r is None or r <= 0 for r in real])
    assert used_ticks.sum() > 50 and (~used_ticks).sum() > 50
    np.testing.assert_array_equal(v[used_ticks], np.asarray(ticks, float)[used_ticks])
    out = compute_features(bars, "D1")
    ref = reference_features(bars)
    for name in ("obv", "ad", "adosc", "mfi_14", "volume_sma_20"):
        assert_matches_reference(name, _values(out, name), ref[name], bars)


def test_zero_range_bar_gives_null_ratios_not_inf_or_zero():
    o = [10.0, 10.2, 10.1, 10.3, 10.3, 10.4]
    h = [10.5, 10.6, 10.4, 10.5, 10.3, 10.7]
    lo = [9.8, 10.0, 9.9, 10.1, 10.3, 10.2]
    c = [10.2, 10.1, 10.3, 10.3, 10.3, 10.6]
    bars = synthetic(o, h, lo, c)  # bar 4: open == high == low == close
    out = compute_features(bars, "H1")
    for name in ("body_ratio", "upper_shadow", "lower_shadow"):
        col = out[name]
        assert col[4] is None, f"{name} on a zero-range bar must be null, got {col[4]!r}"
        assert col.null_count() == 1
        assert np.isfinite(col.drop_nulls().to_numpy()).all()
    # the ratios whose denominators are not the range stay defined
    assert out["hl_range"][4] == 0.0
    assert out["co_ratio"][4] == 0.0
    assert out["log_return_1"][4] == 0.0
    ref = reference_features(bars)
    for name in ("hl_range", "co_ratio", "body_ratio", "upper_shadow", "lower_shadow", "log_return_1",
                 "obv", "ad", "cdl_engulfing"):
        assert_matches_reference(name, _values(out, name), ref[name], bars)


def test_zero_range_bar_adds_nothing_to_ad():
    bars = synthetic([10, 10.3, 10.3], [10.5, 10.3, 10.6], [9.9, 10.3, 10.1], [10.4, 10.3, 10.2])
    ad = compute_features(bars, "H1")["ad"].to_numpy()
    assert ad[1] == ad[0]
    assert ad[0] == pytest.approx((((10.4 - 9.9) - (10.5 - 10.4)) / 0.6) * 100)


def test_doji_compares_with_the_previous_ten_ranges_only():
    # ten candles with range 1.0, then candles judged against that average (0.1 * 1.0 = 0.1)
    o = [100.0] * 10 + [100.0, 100.0, 100.0]
    c = [100.5] * 10 + [100.05, 100.5, 100.5]
    h = [101.0] * 10 + [100.5, 101.0, 125.0]
    lo = [100.0] * 10 + [99.5, 100.0, 75.0]
    out = compute_features(synthetic(o, h, lo, c), "H1")["cdl_doji"].to_list()
    assert out[:10] == [None] * 10  # TA-Lib lookback 10
    assert out[10] == 100  # body 0.05 <= 0.1
    assert out[11] == 0  # body 0.5 > 0.1
    # body 0.5 on a range-50 candle: still 0, the current candle's range is not in the average
    # (with it included the average would be ~5.9 and the body 0.5 < 0.59 would make it a doji)
    assert out[12] == 0


def test_engulfing_constructed_cases():
    # bar 2 black, bar 3 white engulfing it; bar 4 white, bar 5 black engulfing it; then the
    # "bodies share an end" case (open == previous close), which TA-Lib grades 80.
    o = [10.0, 10.0, 10.5, 10.2, 10.6, 11.0, 10.6, 10.7]
    c = [10.1, 10.1, 10.3, 10.7, 10.9, 10.4, 10.5, 10.3]
    h = [max(a, b) + 0.1 for a, b in zip(o, c, strict=True)]
    lo = [min(a, b) - 0.1 for a, b in zip(o, c, strict=True)]
    bars = synthetic(o, h, lo, c)
    out = compute_features(bars, "H1")["cdl_engulfing"].to_list()
    graded = ref_engulfing_talib(np.array(o), np.array(c))
    assert out[:2] == [None, None]
    assert out[3] == 100  # bullish: white 10.2 -> 10.7 engulfs black 10.5 -> 10.3
    assert out[5] == -100  # bearish: black 11.0 -> 10.4 engulfs white 10.6 -> 10.9
    # bars 6 and 7 are black after black: no pattern
    assert out[6] == 0 and out[7] == 0
    # share-an-end: white opens exactly at the black candle's close
    o2, c2 = [10.0, 10.5, 10.3], [10.1, 10.3, 10.6]
    h2 = [max(a, b) + 0.1 for a, b in zip(o2, c2, strict=True)]
    lo2 = [min(a, b) - 0.1 for a, b in zip(o2, c2, strict=True)]
    share = compute_features(synthetic(o2, h2, lo2, c2), "H1")["cdl_engulfing"].to_list()
    assert ref_engulfing_talib(np.array(o2), np.array(c2))[2] == 80
    assert share[2] == 100
    assert graded[3] == 100 and graded[5] == -100


def _degenerate(case: str) -> pl.DataFrame:
    """Bars where TA-Lib meets 0/0: all frozen, moving without volume, a freeze longer than RSI's
    warm-up inside a moving series (o = h = l = c on the frozen bars, volume 1)."""
    n = MAX_WARMUP + 100
    rng = np.random.default_rng(4)
    walk = 50.0 + np.cumsum(rng.choice([-0.01, 0.0, 0.01], n))
    if case == "frozen":
        c = np.full(n, 1.2345)
    elif case == "zero_volume":
        c = walk
    else:
        c = np.concatenate([walk[:300], np.full(n - 300, walk[299])])
    o = np.concatenate([[c[0]], c[:-1]])
    still = np.zeros(n, bool) if case == "zero_volume" else (o == c)
    wick = np.where(still, 0.0, 0.01)
    vol = [0] * n if case == "zero_volume" else [1 if s else 100 + i for i, s in enumerate(still)]
    return synthetic(o, np.maximum(o, c) + wick, np.minimum(o, c) - wick, c, tick_volume=vol)


@pytest.mark.parametrize("case", ["frozen", "zero_volume", "freeze_inside"])
def test_degenerate_bars_match_reference_including_the_nulls(case):
    """The references mark every 0/0 NaN; the computation must publish null on exactly those rows."""
    bars = _degenerate(case)
    out, ref = compute_features(bars, "H1"), reference_features(bars)
    for name in COMPUTED:
        assert_matches_reference(name, _values(out, name), ref[name], bars)
    nulls = {k: int(np.isnan(ref[k][BY_NAME[k].warmup:]).sum()) for k in ("rsi_14", "stoch_k", "mfi_14")}
    assert all(nulls.values()) or case == "zero_volume", nulls  # not vacuous
