"""Synthetic canonical bars for benchmarks: geometric random walks, realistic OHLC, D1 weekdays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl


def synthetic_bars(symbols: int, bars: int, seed: int = 0, timeframe: str = "D1",
                   start: datetime = datetime(2000, 1, 3, tzinfo=UTC)) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n = symbols * bars
    close = (100 * np.exp(np.cumsum(rng.normal(0, 0.01, (symbols, bars)), axis=1))).ravel()
    open_ = close * (1 + rng.normal(0, 0.002, n))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.003, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.003, n)))
    step = {"D1": timedelta(days=1), "H1": timedelta(hours=1)}[timeframe]
    times = pl.datetime_range(start, start + step * (bars - 1), step, eager=True, time_zone="UTC")
    return pl.DataFrame({
        "symbol": np.repeat([f"SYM{i:04d}" for i in range(symbols)], bars),
        "timeframe": timeframe,
        "time": pl.concat([times] * symbols),
        "open": open_, "high": high, "low": low, "close": close,
        "tick_volume": rng.integers(100, 10_000, n),
        "spread": rng.integers(0, 20, n),
        "real_volume": np.zeros(n, dtype=np.int64),
    }).with_columns(pl.col("time").dt.cast_time_unit("us"))
