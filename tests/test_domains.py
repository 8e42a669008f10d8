"""Issue 11, degenerate quotes: every feature stays in its catalog domain, every 0/0 is null.

All 42 features are run over degenerate bars: frozen prices (o = h = l = c, volume 1), zero volume,
one-tick moves, prices around 1e-8, a freeze inside a moving series, and the real broker case
``STOCKCFD_M1_frozen.csv`` (300 moving M1 bars, then 30 frozen). The domains are read from the
catalog (``Feature.domain``) and checked here with their own comparisons. Expected values and
expected nulls are worked out by hand or with plain numpy below, never by the code under test.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import talib
from numpy.lib.stride_tricks import sliding_window_view as windows

from mt5lab import catalog
from mt5lab.bars.readers import read_bars
from mt5lab.catalog import BY_NAME, FEATURES, MAX_WARMUP
from mt5lab.features.compute import compute_features

N = MAX_WARMUP + 150  # every feature publishes on the last 150 bars at least
FROZEN_CASE = Path("/work/shared/cases/broker/STOCKCFD_M1_frozen.csv")
PASSTHROUGH = ("open", "high", "low", "close", "tick_volume", "real_volume", "spread")
COMPUTED = [f.name for f in FEATURES if f.name not in PASSTHROUGH]


def bars(o, h, lo, c, volume=1, real_volume=0, symbol="SYN") -> pl.DataFrame:
    n = len(c)
    t0 = np.datetime64("2024-01-01T00:00:00", "us")
    vol = np.broadcast_to(np.asarray(volume, dtype=np.int64), (n,))
    rv = np.broadcast_to(np.asarray(real_volume, dtype=np.int64), (n,))
    return pl.DataFrame({
        "symbol": [symbol] * n,
        "timeframe": ["M1"] * n,
        "time": pl.Series(t0 + np.arange(n) * np.timedelta64(1, "m")).dt.replace_time_zone("UTC"),
        "open": np.asarray(o, float), "high": np.asarray(h, float),
        "low": np.asarray(lo, float), "close": np.asarray(c, float),
        "tick_volume": pl.Series(vol, dtype=pl.Int64),
        "spread": pl.Series([None] * n, dtype=pl.Int64),
        "real_volume": pl.Series(rv, dtype=pl.Int64),
    })


def candles(close: np.ndarray, tick: float, volume=1) -> pl.DataFrame:
    """Bars opening at the previous close, with a wick of one tick beyond the body on each side."""
    o = np.concatenate([[close[0]], close[:-1]])
    return bars(o, np.maximum(o, close) + tick, np.minimum(o, close) - tick, close, volume)


def values(out: pl.DataFrame, name: str) -> np.ndarray:
    return out[name].cast(pl.Float64).to_numpy()


def assert_in_catalog_domains(out: pl.DataFrame, where: str) -> None:
    """Every published value of all 42 features is finite and inside ``Feature.domain``."""
    assert set(FEATURES) == {BY_NAME[c] for c in out.columns if c in BY_NAME}, "not all 42 features"
    for f in FEATURES:
        v = values(out, f.name)[~np.isnan(values(out, f.name))]
        assert np.isfinite(v).all(), f"{where}: {f.name} publishes inf"
        d = f.domain
        if d.values:
            bad = v[~np.isin(v, np.asarray(d.values, float))]
        else:
            low = (v <= d.lo if d.lo_open else v < d.lo) if d.lo is not None else np.zeros(len(v), bool)
            high = v > d.hi if d.hi is not None else np.zeros(len(v), bool)
            bad = v[low | high]
        assert bad.size == 0, f"{where}: {f.name} outside {d}: {bad[:5].tolist()}"


def assert_warmup_null(out: pl.DataFrame) -> None:
    for name in COMPUTED:
        w = BY_NAME[name].warmup
        assert np.isnan(values(out, name)[:w]).all(), f"{name}: warm-up rows published"


# --------------------------------------------------------------------------------------------------
# The catalog: a domain for every feature, rendered and hashed
# --------------------------------------------------------------------------------------------------

# The table, restated: feature -> (lo, hi, lo_open) or a set.
EXPECTED_DOMAINS = {
    **{k: (0.0, None, True) for k in ("open", "high", "low", "close", "sma_5", "sma_10", "sma_20",
                                      "sma_50", "sma_200", "ema_12", "ema_26", "ema_50", "bb_upper_20",
                                      "bb_middle_20")},
    **{k: (0.0, None, False) for k in ("tick_volume", "real_volume", "spread", "atr_14", "natr_14",
                                       "bb_width_20", "stddev_20", "volume_sma_20", "hl_range")},
    **{k: (0.0, 100.0, False) for k in ("rsi_14", "stoch_k", "stoch_d", "mfi_14")},
    **{k: (0.0, 1.0, False) for k in ("body_ratio", "upper_shadow", "lower_shadow")},
    **{k: (None, None, False) for k in ("macd", "macd_signal", "macd_hist", "bb_lower_20", "obv", "ad",
                                        "adosc", "log_return_1")},
    "roc_10": (-100.0, None, False),
    "co_ratio": (-1.0, None, False),
    "cdl_doji": {0, 100},
    "cdl_engulfing": {-100, 0, 100},
}


def test_every_feature_has_the_expected_domain():
    assert set(EXPECTED_DOMAINS) == set(catalog.FEATURE_NAMES)
    for f in FEATURES:
        want, d = EXPECTED_DOMAINS[f.name], f.domain
        if isinstance(want, set):
            assert set(d.values) == want, f.name
        else:
            assert (d.lo, d.hi, d.lo_open, d.values) == (*want, ()), f.name


def test_domain_is_rendered_and_hashed(monkeypatch):
    rendered = {r["feature"]: r["domain"] for r in catalog.as_records()}
    assert rendered["rsi_14"] == "[0, 100]"
    assert rendered["sma_20"] == "(0, inf)"
    assert rendered["roc_10"] == "[-100, inf)"
    assert rendered["macd"] == "(-inf, inf)"
    assert rendered["cdl_engulfing"] == "{-100, 0, 100}"
    assert all(rendered[f.name] == str(f.domain) for f in FEATURES)
    before = catalog.catalog_hash()
    assert before == catalog.catalog_hash()  # stable
    changed = tuple(replace(f, domain=catalog.Domain(0.0, 1.0)) if f.name == "rsi_14" else f
                    for f in FEATURES)
    monkeypatch.setattr(catalog, "FEATURES", changed)
    assert catalog.catalog_hash() != before  # the domain is part of the hashed content


def test_a_feature_cannot_be_declared_without_a_domain():
    with pytest.raises(TypeError):
        catalog.Feature("x", "v", "Float64", "d", "desc")  # type: ignore[call-arg]


# --------------------------------------------------------------------------------------------------
# Frozen prices: o = h = l = c, volume 1
# --------------------------------------------------------------------------------------------------

def test_frozen_bars():
    out = compute_features(bars(*[np.full(N, 1.2345)] * 4), "M1")
    assert_in_catalog_domains(out, "frozen")
    assert_warmup_null(out)
    # 0/0 everywhere: the range is 0 (stoch, body/shadow shares), no money flow (mfi), no gain and
    # no loss (rsi). Null on every row, never TA-Lib's stand-in 0.
    for name in ("stoch_k", "stoch_d", "mfi_14", "rsi_14", "body_ratio", "upper_shadow", "lower_shadow"):
        assert out[name].null_count() == N, name
    tail = slice(MAX_WARMUP, N)
    # values that are defined, worked out by hand for a constant price p = 1.2345, volume 1
    for name in ("hl_range", "co_ratio", "stddev_20", "bb_width_20", "atr_14", "natr_14", "roc_10",
                 "ad", "adosc", "macd", "macd_signal", "macd_hist"):
        np.testing.assert_allclose(values(out, name)[tail], 0.0, atol=1e-12, err_msg=name)
    np.testing.assert_array_equal(values(out, "log_return_1")[1:], 0.0)
    np.testing.assert_array_equal(values(out, "obv"), 1.0)  # first bar's volume, no change after
    np.testing.assert_allclose(values(out, "volume_sma_20")[tail], 1.0, rtol=1e-15)
    for name in ("sma_5", "sma_200", "ema_50", "bb_upper_20", "bb_middle_20", "bb_lower_20"):
        np.testing.assert_allclose(values(out, name)[tail], 1.2345, rtol=1e-12, err_msg=name)
    # a frozen bar is a perfect doji: body 0 <= 10 % of an average range of 0
    assert set(out["cdl_doji"].drop_nulls().to_list()) == {100}
    assert set(out["cdl_engulfing"].drop_nulls().to_list()) == {0}


def test_zero_volume_moving_prices():
    rng = np.random.default_rng(3)
    c = 100.0 + np.cumsum(rng.choice([-0.01, 0.0, 0.01], N))
    out = compute_features(candles(c, 0.01, volume=0), "M1")
    assert_in_catalog_domains(out, "zero volume")
    # no volume, no money flow: MFI is 0/0 on every row
    assert out["mfi_14"].null_count() == N
    for name in ("obv", "ad", "adosc", "volume_sma_20"):
        np.testing.assert_array_equal(values(out, name)[BY_NAME[name].warmup:], 0.0, err_msg=name)
    # the price features do not care
    assert out["rsi_14"][N - 1] is not None and out["stoch_k"][N - 1] is not None


# --------------------------------------------------------------------------------------------------
# One-tick moves: hand-computed values at the edges of the domains
# --------------------------------------------------------------------------------------------------

TICK = 1e-5


def test_one_tick_rise_gives_the_top_of_every_oscillator():
    c = 1.10000 + TICK * np.arange(N)
    # each bar opens at the previous close and closes one tick up at its high; low one tick under
    o = np.concatenate([[c[0] - TICK], c[:-1]])
    out = compute_features(bars(o, c, o - TICK, c, volume=7), "M1")
    assert_in_catalog_domains(out, "rising")
    pub = slice(MAX_WARMUP, N)
    # only gains: RSI = 100 G / (G + 0) = 100
    np.testing.assert_array_equal(values(out, "rsi_14")[pub], 100.0)
    # close is the highest high of every window: fast %K = 100, and so its averages
    np.testing.assert_allclose(values(out, "stoch_k")[pub], 100.0, rtol=0, atol=1e-9)
    np.testing.assert_allclose(values(out, "stoch_d")[pub], 100.0, rtol=0, atol=1e-9)
    # typical price rises every bar: all money flow is positive, MFI = 100
    np.testing.assert_allclose(values(out, "mfi_14")[pub], 100.0, rtol=0, atol=1e-9)
    # ROC and log return by hand
    want_roc = 100.0 * (c[10:] / c[:-10] - 1.0)
    np.testing.assert_allclose(values(out, "roc_10")[10:], want_roc, rtol=1e-9)
    np.testing.assert_allclose(values(out, "log_return_1")[1:], np.log(c[1:] / c[:-1]), rtol=1e-9)
    # body 1 tick of a 2-tick range, no upper shadow, 1-tick lower shadow
    np.testing.assert_allclose(values(out, "body_ratio"), 0.5, rtol=1e-6)
    np.testing.assert_allclose(values(out, "upper_shadow"), 0.0, atol=1e-9)
    np.testing.assert_allclose(values(out, "lower_shadow"), 0.5, rtol=1e-6)
    np.testing.assert_array_equal(values(out, "obv"), 7.0 * np.arange(1, N + 1))


def test_one_tick_fall_gives_a_true_zero_not_a_null():
    c = 1.10000 - TICK * np.arange(N)
    o = np.concatenate([[c[0] + TICK], c[:-1]])
    out = compute_features(bars(o, o + TICK, c, c, volume=7), "M1")
    assert_in_catalog_domains(out, "falling")
    pub = slice(MAX_WARMUP, N)
    # only losses: RSI = 100 * 0 / (0 + L) = 0, a value (L > 0), not 0/0
    np.testing.assert_array_equal(values(out, "rsi_14")[pub], 0.0)
    # close is the lowest low: fast %K = 0; all money flow negative: MFI = 0
    for name in ("stoch_k", "stoch_d", "mfi_14"):
        v = values(out, name)[pub]
        assert not np.isnan(v).any(), f"{name}: a true 0 was nulled"
        np.testing.assert_allclose(v, 0.0, rtol=0, atol=1e-9, err_msg=name)
    np.testing.assert_allclose(values(out, "roc_10")[10:], 100.0 * (c[10:] / c[:-10] - 1.0), rtol=1e-9)


def test_random_one_tick_walk_with_flat_bars():
    rng = np.random.default_rng(11)
    c = np.round(1.10000 + TICK * np.cumsum(rng.choice([-1, 0, 0, 1], N)), 5)
    o = np.concatenate([[c[0]], c[:-1]])
    wick = rng.choice([0.0, TICK], (2, N))
    h, lo = np.maximum(o, c) + wick[0], np.minimum(o, c) - wick[1]
    out = compute_features(bars(o, h, lo, c, rng.integers(0, 3, N)), "M1")
    assert_in_catalog_domains(out, "tick walk")
    assert_warmup_null(out)
    flat = h == lo
    assert flat.any() and (~flat).any()
    # the bar shares are null exactly on the zero-range bars
    for name in ("body_ratio", "upper_shadow", "lower_shadow"):
        np.testing.assert_array_equal(np.isnan(values(out, name)), flat, err_msg=name)
    # no 14-bar window is flat here, so every stochastic is defined; where raw TA-Lib's running sums
    # leave it a hair under 0 (this walk has such rows), the published value is the bound, 0.0
    assert (windows(h, 14).max(axis=1) > windows(lo, 14).min(axis=1)).all()
    raw_k, raw_d = talib.STOCH(h, lo, c, 14, 3, talib.MA_Type.SMA, 3, talib.MA_Type.SMA)
    for name, raw in (("stoch_k", raw_k), ("stoch_d", raw_d)):
        got = values(out, name)
        assert not np.isnan(got[17:]).any(), name
        under = raw < 0
        assert (raw[under] > -1e-9).all()
        np.testing.assert_array_equal(got[under], 0.0)
        ok = ~np.isnan(raw) & ~under
        np.testing.assert_array_equal(got[ok], np.minimum(raw[ok], 100.0))
    assert (raw_k < 0).sum() >= 1, "the walk no longer exercises the clip; pick another seed"


# --------------------------------------------------------------------------------------------------
# Prices around 1e-8: no absolute epsilon may swallow a real value
# --------------------------------------------------------------------------------------------------

def test_prices_around_1e_minus_8():
    rng = np.random.default_rng(5)
    c = 1e-8 * np.exp(np.cumsum(0.002 * rng.standard_normal(N)))
    out = compute_features(candles(c, 1e-11, volume=rng.integers(1, 50, N)), "M1")
    assert_in_catalog_domains(out, "1e-8")
    pub = slice(MAX_WARMUP, N)
    # nothing degenerate here: every published row of every computed feature has a value
    for name in COMPUTED:
        assert not np.isnan(values(out, name)[pub]).any(), name
    # population standard deviation by two-pass numpy, per window
    want = windows(c, 20).std(axis=1, ddof=0)
    np.testing.assert_allclose(values(out, "stddev_20")[19:], want, rtol=1e-6)
    assert (values(out, "stddev_20")[pub] > 0).all()
    # a strictly rising run at this scale still has RSI 100
    up = 1e-8 + 1e-12 * np.arange(N)
    rsi = values(compute_features(candles(up, 1e-12), "M1"), "rsi_14")
    np.testing.assert_array_equal(rsi[BY_NAME["rsi_14"].warmup:], 100.0)


# --------------------------------------------------------------------------------------------------
# A freeze inside a moving series
# --------------------------------------------------------------------------------------------------

def test_freeze_then_fall_clips_round_off_to_the_bound():
    """After a freeze, STOCH's running sums carry residue; a close at the lowest low is then 0."""
    rng = np.random.default_rng(2)
    move = 50.0 + np.cumsum(rng.choice([-0.05, 0.05], 300))
    stop = np.full(40, move[-1])
    fall = move[-1] - 0.05 * np.arange(1, 60)
    c = np.concatenate([move, stop, fall])
    o = np.concatenate([[c[0]], c[:-1]])
    wick = np.where(np.arange(len(c)) < 300, 0.05, 0.0)  # frozen and falling bars: no wicks
    h, lo = np.maximum(o, c) + wick, np.minimum(o, c) - wick  # a falling bar closes at its low
    out = compute_features(bars(o, h, lo, c, volume=5), "M1")
    assert_in_catalog_domains(out, "freeze then fall")
    k = values(out, "stoch_k")
    # frozen window of 14 bars (all of 300..339 at one price): fast %K 0/0 from bar 313; slow %K and
    # %D average 3 / 5 fast %K, so they stay null until bar 339 + 2 / + 4
    hh, ll = windows(h, 14).max(axis=1), windows(lo, 14).min(axis=1)
    zero_range = np.concatenate([np.zeros(13, bool), hh == ll])
    undefined_k = np.convolve(zero_range, np.ones(3), "full")[:len(c)] > 0
    np.testing.assert_array_equal(np.isnan(k[17:]), undefined_k[17:])
    # falling closes at the low: %K is exactly the bottom of its domain (any residue clipped)
    tail = k[345:]
    assert not np.isnan(tail).any()
    np.testing.assert_allclose(tail, 0.0, rtol=0, atol=1e-9)


def test_rsi_is_null_once_the_freeze_outlasts_its_warmup():
    """RSI keeps its value through a freeze (G and L decay alike), until no change is left within
    its warm-up: then G + L holds nothing but remainders older than the warm-up, and it is 0/0."""
    rng = np.random.default_rng(9)
    move = 20.0 + np.cumsum(rng.choice([-0.01, 0.01], 300))
    c = np.concatenate([move, np.full(400, move[-1])])
    out = compute_features(candles(c, 0.01), "M1")
    assert_in_catalog_domains(out, "long freeze")
    rsi = values(out, "rsi_14")
    w = BY_NAME["rsi_14"].warmup
    last_move = int(np.flatnonzero(np.diff(c))[-1]) + 1  # the last bar whose close changed
    assert w < last_move < 300
    # published through the freeze, with the value of the last moving bar
    np.testing.assert_allclose(rsi[last_move:last_move + w], rsi[last_move], rtol=1e-9)
    # closes c[i-w .. i] all equal from i = last_move + w on: null
    assert np.isnan(rsi[last_move + w:]).all()
    assert 0 < rsi[last_move] < 100


# --------------------------------------------------------------------------------------------------
# The real broker case: 300 moving M1 bars, then 30 frozen
# --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stockcfd():
    b = read_bars(FROZEN_CASE, symbol="STOCKCFD", timeframe="M1")
    return b, compute_features(b, "M1")


def test_stockcfd_file_parses(stockcfd):
    b, out = stockcfd
    assert b.height == out.height == 330
    o, h, lo, c = (b[k].to_numpy() for k in ("open", "high", "low", "close"))
    assert ((o == h) & (h == lo) & (lo == c))[300:].all() and (h > lo)[:300].any()
    assert (b["tick_volume"].to_numpy()[300:] == 1).all() and len(set(c[300:])) == 1


def test_stockcfd_stays_in_domain_with_nulls_on_the_frozen_stretch(stockcfd):
    b, out = stockcfd
    assert_in_catalog_domains(out, "STOCKCFD")
    h, lo, c = (b[k].to_numpy() for k in ("high", "low", "close"))
    # stochastics: the 14-bar window is all frozen from bar 300 + 13 = 313
    for name in ("stoch_k", "stoch_d"):
        v = values(out, name)
        assert np.isnan(v[313:]).all(), f"{name} on the frozen stretch must be null, got {v[313:]}"
        assert not np.isnan(v[17:313]).any(), name
    # MFI: flows compare a bar with the one before; bar 300's typical price differs from bar 299's,
    # so the 14 flows of bars 301..314 are the first with none at all
    tp = (h + lo + c) / 3.0
    assert tp[300] != tp[299]
    mfi = values(out, "mfi_14")
    assert np.isnan(mfi[314:]).all(), f"mfi_14 on the frozen stretch must be null, got {mfi[314:]}"
    assert not np.isnan(mfi[14:314]).any()
    # the values kept before are right: slow stochastic by plain numpy (fresh mean per window)
    hh, ll = windows(h, 14).max(axis=1), windows(lo, 14).min(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):  # 0/0 on the frozen windows
        fast = 100.0 * (c[13:] - ll) / (hh - ll)  # finite for bars 13..312
    slow_k = windows(fast[:300], 3).mean(axis=1)  # bars 15..312
    slow_d = windows(slow_k, 3).mean(axis=1)  # bars 17..312
    np.testing.assert_allclose(values(out, "stoch_k")[17:313], slow_k[2:], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(values(out, "stoch_d")[17:313], slow_d, rtol=1e-9, atol=1e-9)
    # RSI is a value, not 0/0: the freeze (30 bars) is shorter than its warm-up
    rsi = values(out, "rsi_14")[300:]
    assert not np.isnan(rsi).any() and (rsi > 0).all() and (rsi < 100).all()
    # the bar shares of a frozen bar are 0/0; its range ratio is a plain 0
    for name in ("body_ratio", "upper_shadow", "lower_shadow"):
        assert np.isnan(values(out, name)[300:]).all(), name
    np.testing.assert_array_equal(values(out, "hl_range")[300:], 0.0)


def test_multi_symbol_frame_keeps_the_rule_per_symbol(stockcfd):
    """A frozen symbol next to a moving one: its nulls do not leak into the other."""
    b, _ = stockcfd
    moving = b.head(300).with_columns(pl.lit("MOVING").alias("symbol"))
    both = pl.concat([b.select(moving.columns), moving])
    out = compute_features(both, "M1")
    assert_in_catalog_domains(out, "two symbols")
    mv = out.filter(pl.col("symbol") == "MOVING")
    assert mv["stoch_k"].null_count() == BY_NAME["stoch_k"].warmup
    assert mv["mfi_14"].null_count() == BY_NAME["mfi_14"].warmup
    fr = out.filter(pl.col("symbol") == "STOCKCFD")
    assert fr["stoch_k"].tail(17).null_count() == 17


def test_invalid_bars_cannot_push_a_value_out_of_its_domain():
    """Validation rejects such bars; the computation still publishes nothing outside a domain (a
    close above the high gives a negative upper shadow: null, not clipped to 0)."""
    rng = np.random.default_rng(8)
    c = 10.0 + np.cumsum(rng.choice([-0.1, 0.1], N))
    o = np.concatenate([[c[0]], c[:-1]])
    h, lo = np.maximum(o, c) + 0.05, np.minimum(o, c) - 0.05
    bad = rng.choice(N, 40, replace=False)
    h[bad] = c[bad] - 0.02  # close above the high
    out = compute_features(bars(o, h, lo, c, volume=3), "M1")
    assert_in_catalog_domains(out, "invalid bars")
    assert np.isnan(values(out, "upper_shadow")[bad]).all()
    assert not np.isnan(np.delete(values(out, "upper_shadow"), bad)).any()
