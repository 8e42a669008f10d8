"""Point-in-time training sets: equal to Feast's own get_historical_features (local and postgres),
the H1-on-D1 availability rule, and the look-ahead property on the real samples.

The oracles are independent of the code under test: Feast itself, raw bars selected by plain
numpy, and ``compute_features`` re-run on history cut at the decision time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import polars as pl
import pytest

from mt5lab import catalog
from mt5lab.bars.samples import load_sample
from mt5lab.catalog import FEATURES, MAX_WARMUP, WARMUP_TOLERANCE, ttl
from mt5lab.features.build import feature_rows
from mt5lab.features.compute import compute_features
from mt5lab.training.assemble import training_set
from mt5lab.training.pit_feast import compare, feast_historical, file_store_drops

D1 = timedelta(days=1)
TTL = ttl("D1")
START = datetime(2021, 1, 4, tzinfo=UTC)
FEATURE_NAMES = [f.name for f in FEATURES]


def synthetic_bars(symbol: str, n: int, seed: int, start: datetime = START, gap_at: int | None = None,
                   gap_days: int = 0) -> pl.DataFrame:
    """D1 bars on weekdays, with an optional long gap (days) after bar ``gap_at``."""
    rng = np.random.default_rng(seed)
    days, d = [], start
    while len(days) < n:
        if d.weekday() < 5:
            days.append(d)
            if gap_at is not None and len(days) == gap_at:
                d += timedelta(days=gap_days)
        d += D1
    c = 50 * np.exp(np.cumsum(rng.normal(0, 0.015, n)))
    o = c * np.exp(rng.normal(0, 0.004, n))
    h = np.maximum(o, c) * (1 + rng.random(n) * 0.01)
    lo = np.minimum(o, c) * (1 - rng.random(n) * 0.01)
    return pl.DataFrame({"symbol": symbol, "timeframe": "D1", "time": days, "open": o, "high": h, "low": lo,
                         "close": c, "tick_volume": rng.integers(50, 5000, n), "spread": rng.integers(1, 9, n),
                         "real_volume": np.zeros(n, dtype=np.int64)},
                        schema_overrides={"time": pl.Datetime("us", "UTC")})


SYNTH = {"AAA": dict(n=260, seed=1), "BBB": dict(n=230, seed=2, start=START + 40 * D1, gap_at=120, gap_days=9),
         "CCC": dict(n=90, seed=3, start=START + 100 * D1)}


def _fill_store(profile: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    from mt5lab.feast_repo.store import apply
    from mt5lab.storage import open_store

    bars = pl.concat([synthetic_bars(s, **kw) for s, kw in SYNTH.items()])
    store = open_store(profile)
    with store.lock():
        store.write_bars(bars)
        store.write_features("D1", feature_rows(bars, "D1"))
    apply(profile, "D1")
    return bars, store.read_features("D1")


@pytest.fixture(scope="module", params=["local", "postgres"])
def synth_store(request, tmp_path_factory):
    """The synthetic D1 store on each profile (postgres: a fresh database and a throwaway Redis)."""
    from contextlib import ExitStack

    from mt5lab.feast_repo import store as store_mod

    mp = pytest.MonkeyPatch()
    stack = ExitStack()
    mp.setenv("MT5LAB_DATA_DIR", str(tmp_path_factory.mktemp(f"pit_{request.param}") / "data"))
    if request.param == "postgres":
        from tests.conftest import require_service

        require_service("PostgreSQL", "127.0.0.1", 5432)
        from mt5lab.testing.sandbox import postgres_profile_env

        stack.enter_context(postgres_profile_env())
    else:
        mp.delenv("MT5LAB_PROFILE", raising=False)
    store_mod._STORES.clear()
    try:
        bars, feats = _fill_store(request.param)
        yield {"profile": request.param, "bars": bars, "features": feats}
    finally:
        store_mod._STORES.clear()
        stack.close()
        mp.undo()


def random_entities(bars: pl.DataFrame, seed: int, n: int = 240) -> pd.DataFrame:
    """Decision times of every kind: on bar closes, between them, before the first bar, at and past
    ttl expiry (end of data and inside a long gap), unknown symbols, and duplicated rows."""
    rng = np.random.default_rng(seed)
    closes = bars.select("symbol", (pl.col("time") + D1).alias("c")).sort("symbol", "c")
    rows = []
    syms = sorted(SYNTH)
    for _ in range(n):
        s = syms[rng.integers(len(syms))]
        c = closes.filter(pl.col("symbol") == s)["c"].to_list()
        kind = rng.integers(7)
        if kind == 0:
            t = c[rng.integers(len(c))]
        elif kind == 1:
            t = c[rng.integers(len(c))] + timedelta(microseconds=int(rng.integers(1, 86_400_000_000)))
        elif kind == 2:
            t = c[0] - timedelta(microseconds=int(rng.integers(1, 20 * 86_400_000_000)))
        elif kind == 3:
            t = c[-1] + TTL + timedelta(microseconds=int(rng.integers(-1, 2)))  # boundary +- 1 us
        elif kind == 4:
            t = c[-1] + TTL + timedelta(hours=int(rng.integers(1, 500)))
        elif kind == 5:
            gaps = [a for a, b in zip(c[:-1], c[1:], strict=True) if b - a > TTL]
            a = gaps[0] if gaps else c[-1]
            t = a + TTL + timedelta(microseconds=int(rng.integers(-2, 3)))
        else:
            s, t = f"UNK{rng.integers(3)}", c[rng.integers(len(c))]
        rows.append((s, t))
    df = pd.DataFrame(rows, columns=["symbol", "event_timestamp"])
    df["event_timestamp"] = pd.to_datetime(df["event_timestamp"], utc=True).astype("datetime64[ns, UTC]")
    dup = df.sample(n=n // 10, random_state=seed)
    df = pd.concat([df, dup], ignore_index=True).sample(frac=1.0, random_state=seed + 1).reset_index(drop=True)
    df["row_id"] = np.arange(len(df), dtype=np.int64)
    return df


CASES = [
    pytest.param(11, "mt5_v1", False, id="service"),
    pytest.param(12, ["price_action:cdl_doji", "ohlcv_features:close", "technical_indicators_ma:sma_200",
                      "price_action:hl_range", "ohlcv_features:tick_volume"], True, id="refs-full-names"),
]


@pytest.mark.parametrize(("seed", "features", "full"), CASES)
def test_equals_feast_get_historical_features(synth_store, seed, features, full, monkeypatch):
    prof, bars = synth_store["profile"], synth_store["bars"]
    edf = random_entities(bars, seed)
    ours = training_set(edf, features, profile=prof, full_feature_names=full, progress=False)
    assert len(ours) == len(edf) and ours["row_id"].tolist() == edf["row_id"].tolist()  # input order
    feast = feast_historical(edf, features, profile=prof, full_feature_names=full)
    feature_cols = [c for c in ours.columns if c not in edf.columns]
    if prof == "local":
        # Feast's file store drops rows with no feature row in the window and merges duplicates:
        # every dropped row must be one of those; then compare on the rows it returned.
        assert len(feast) < len(edf)
        assert file_store_drops(ours, feast, set(SYNTH), feature_cols) == []
        kept = edf[edf["row_id"].isin(feast["row_id"])].reset_index(drop=True)
        ours = training_set(kept, features, profile=prof, full_feature_names=full, progress=False)
        # the read_features path (no memory-mapped mirror) gives the very same frame
        monkeypatch.setenv("MT5LAB_PIT_MIRROR", "0")
        plain = training_set(kept, features, profile=prof, full_feature_names=full, progress=False)
        pd.testing.assert_frame_equal(plain, ours, check_exact=True)
    else:
        assert len(feast) == len(edf)
        # the server-side join (small frames) was compared with Feast below; the bulk read + polars
        # as-of path (large frames) must give the very same frame
        from mt5lab.training import pit_sql

        monkeypatch.setattr(pit_sql, "LATERAL_MAX_ROWS", 0)
        bulk = training_set(edf, features, profile=prof, full_feature_names=full, progress=False)
        pd.testing.assert_frame_equal(bulk, ours, check_exact=True)
    assert compare(ours, feast) == []
    # the cases the generator aims at all occur (so the comparison covered them)
    nulls = ours[feature_cols].isna().all(axis=1)
    assert nulls.any() and (~nulls).any()


def test_compare_detects_a_difference():
    """The comparator itself can fail: a 1-ulp value change, a dtype change, a lost row."""
    ts = pd.to_datetime(["2021-01-05", "2021-01-06"], utc=True).astype("datetime64[ns, UTC]")
    ours = pd.DataFrame({"symbol": ["A", "B"], "event_timestamp": ts, "row_id": [0, 1],
                         "close": [1.5, np.nan], "spread": [3, 4]})
    feast = ours.iloc[::-1].copy()  # Feast's own order
    feast["event_timestamp"] = feast["event_timestamp"].dt.tz_localize(None).astype("datetime64[us]")
    assert compare(ours, feast) == []  # order and Postgres' naive UTC are the only normalisations
    other = feast.copy()
    other.loc[0, "close"] = np.nextafter(1.5, 2.0)
    assert any(p.startswith("close") for p in compare(ours, other))
    other = feast.copy()
    other["spread"] = other["spread"].astype(float)
    assert any("dtype" in p for p in compare(ours, other))
    assert any("row ids" in p for p in compare(ours, feast.iloc[:1]))


def test_polars_output_has_catalog_dtypes_and_same_values(synth_store):
    prof = synth_store["profile"]
    edf = random_entities(synth_store["bars"], 21, n=60)
    pdf = training_set(edf, profile=prof, progress=False)
    plf = training_set(pl.from_pandas(edf), profile=prof, to="polars", progress=False)
    assert plf.height == len(edf)
    for f in FEATURES:
        assert plf.schema[f.name] == (pl.Float64 if f.dtype == "Float64" else pl.Int64), f.name
        a = plf[f.name].cast(pl.Float64).to_numpy()
        b = pdf[f.name].to_numpy(dtype=float)
        assert np.array_equal(a, b, equal_nan=True), f.name


# --- H1 decisions on D1 features: only the last *closed* D1 bar --------------------------------

def test_h1_decision_sees_only_closed_d1_bar(synth_store):
    prof, bars = synth_store["profile"], synth_store["bars"]
    aaa = bars.filter(pl.col("symbol") == "AAA").sort("time")
    times = aaa["time"].to_list()
    day = times[30]  # a weekday bar: open at `day`, closes at `day + 1d`
    decisions = [day + timedelta(hours=h) for h in range(1, 25)] + [day + D1 - timedelta(microseconds=1)]
    edf = pd.DataFrame({"symbol": "AAA", "event_timestamp": pd.to_datetime(decisions, utc=True)})
    out = training_set(edf, ["ohlcv_features:open", "ohlcv_features:close"], profile=prof, progress=False)
    close = aaa["close"].to_numpy()
    opens = aaa["open"].to_numpy()
    i_prev, i_day = 29, 30
    for t, o, c in zip(decisions, out["open"], out["close"], strict=True):
        expect = i_day if t >= day + D1 else i_prev  # the day's bar only once it has closed
        assert (o, c) == (opens[expect], close[expect]), t


# --- The look-ahead property on the real samples ---------------------------------------------------

@pytest.fixture(scope="module")
def sample_store(tmp_path_factory):
    from mt5lab.feast_repo import store as store_mod
    from mt5lab.storage import open_store

    mp = pytest.MonkeyPatch()
    mp.setenv("MT5LAB_DATA_DIR", str(tmp_path_factory.mktemp("pit_samples") / "data"))
    mp.delenv("MT5LAB_PROFILE", raising=False)
    store_mod._STORES.clear()
    store = open_store("local")
    bars = {s: load_sample(s) for s in ("GOOG", "EURUSD")}
    with store.lock():
        for b in bars.values():
            store.write_bars(b)
            store.write_features(b["timeframe"][0], feature_rows(b, b["timeframe"][0]))
    yield {"store": store, "bars": bars}
    store_mod._STORES.clear()
    mp.undo()


def _effective_volume(b: pl.DataFrame) -> np.ndarray:
    rv = b["real_volume"].fill_null(0).to_numpy().astype(float)
    return np.where(rv > 0, rv, b["tick_volume"].fill_null(0).to_numpy().astype(float))


def _allowed(f: catalog.Feature, cut: pl.DataFrame, value: float) -> float:
    """``WARMUP_TOLERANCE * scale`` at the cut's last bar (scales as in tests/test_warmup.py)."""
    if f.scale is None or f.cumulative:
        return 0.0  # candle patterns exact; obv/ad cut from the same first bar: exact
    if f.scale == "price":
        return WARMUP_TOLERANCE * abs(cut["close"][-1])
    if f.scale == "percent":
        return WARMUP_TOLERANCE * 100.0
    if f.scale == "volume":
        return WARMUP_TOLERANCE * _effective_volume(cut)[-(MAX_WARMUP + 1):].max()
    return WARMUP_TOLERANCE * max(abs(value), 1.0)


def lookahead_mismatches(got: pl.DataFrame, bars: pl.DataFrame, times: list[datetime],
                         tf: str) -> tuple[list, int, int]:
    """Each decision's row (``got``, one per time, polars) against ``compute_features`` re-run on the
    bars closed by then: (mismatches, values published, decisions checked). The oracle never sees a
    bar closing after ``t``; a published value with no bar closed within ttl is a mismatch too."""
    step, span = catalog.TIMEFRAMES[tf], ttl(tf)
    mismatches, published, checked = [], 0, 0
    for i, t in enumerate(times):
        cut = bars.filter(pl.col("time") + step <= t)  # only bars closed by t
        row = got.row(i, named=True)
        if cut.height == 0 or cut["time"][-1] + step < t - span:  # nothing knowable, or expired
            if any(row[f] is not None for f in FEATURE_NAMES):
                mismatches.append((t, "published a value with no bar closed within ttl"))
            continue
        ref = compute_features(cut, tf).row(-1, named=True)
        checked += 1
        for f in FEATURES:
            a, b = row[f.name], ref[f.name]
            if a is None or b is None:
                if (a is None) != (b is None):
                    mismatches.append((t, f.name, a, b))
                continue
            published += 1
            if abs(a - b) > _allowed(f, cut, b):
                mismatches.append((t, f.name, a, b))
    return mismatches, published, checked


def _decision_times(bars: pl.DataFrame, tf: str, rng, n: int) -> list[datetime]:
    step = catalog.TIMEFRAMES[tf]
    closes = (bars["time"] + step).to_list()
    out = []
    for _ in range(n):
        k, c = rng.integers(6), closes[rng.integers(len(closes))]
        if k == 0:
            out.append(c)  # exactly at a close: that bar is included
        elif k == 1:
            out.append(c - timedelta(microseconds=1))  # a hair before: it is not
        elif k == 2:
            out.append(c + timedelta(seconds=int(rng.integers(1, int(step.total_seconds()) * 3))))
        elif k == 3:
            out.append(closes[0] - timedelta(hours=int(rng.integers(0, 100))))
        elif k == 4:
            out.append(closes[-1] + timedelta(hours=int(rng.integers(0, 24 * 6))))
        else:
            out.append(closes[min(int(rng.integers(0, 2 * MAX_WARMUP)), len(closes) - 1)])  # in warm-up
    return out


@pytest.mark.parametrize("symbol", ["GOOG", "EURUSD"])
def test_no_lookahead_recompute_on_cut_history(sample_store, symbol):
    bars = sample_store["bars"][symbol]
    tf = bars["timeframe"][0]
    rng = np.random.default_rng(2024 if symbol == "GOOG" else 7)
    times = _decision_times(bars, tf, rng, 150)
    edf = pl.DataFrame({"symbol": symbol, "event_timestamp": times},
                       schema_overrides={"event_timestamp": pl.Datetime("us", "UTC")})
    got = training_set(edf, timeframe=tf, to="polars", store=sample_store["store"], progress=False)
    mismatches, published, checked = lookahead_mismatches(got, bars, times, tf)
    assert checked > 50 and published > 1000
    assert mismatches == [], f"{len(mismatches)} look-ahead mismatches, first: {mismatches[:5]}"

