"""Real sample bars that ship inside a PyPI package, so the demo works offline.

Source: the ``backtesting`` package (backtesting.py) ships ``backtesting/test/GOOG.csv`` (Google
daily bars 2004-08-19 to 2013-03-01, 2,148 bars, exchange volume) and ``EURUSD.csv`` (EUR/USD hourly
bars 2017-04-19 to 2018-02-07, 5,000 bars, tick volume). Why this one: it is the only candidate with
both a real FX series on an intraday timeframe (what an MT5 desk trades) and a long daily series (so
every D1 warm-up, up to ``sma_200`` and ``ema_50``, completes), in plain CSV. The package is AGPL:
we locate its data files through ``importlib.metadata`` and read them as CSV; its code is never
imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import polars as pl


@dataclass(frozen=True)
class Sample:
    symbol: str
    timeframe: str
    file: str
    volume_column: str  # which canonical column the CSV's "Volume" is
    calendar: str


SAMPLES: dict[str, Sample] = {
    "GOOG": Sample("GOOG", "D1", "backtesting/test/GOOG.csv", "real_volume", "equity"),
    "EURUSD": Sample("EURUSD", "H1", "backtesting/test/EURUSD.csv", "tick_volume", "fx"),
}


def sample_path(name: str) -> Path:
    """Path of a sample CSV inside the installed ``backtesting`` distribution (no import of it)."""
    sample = SAMPLES[name.upper()]
    try:
        dist = metadata.distribution("backtesting")
    except metadata.PackageNotFoundError as exc:  # pragma: no cover - a dependency of mt5lab
        raise FileNotFoundError("sample data needs the 'backtesting' package: pip install backtesting") from exc
    path = Path(dist.locate_file(sample.file))
    if not path.is_file():  # pragma: no cover
        raise FileNotFoundError(f"sample file missing from the backtesting package: {path}")
    return path


def load_sample(name: str) -> pl.DataFrame:
    """One sample symbol as canonical bars (times are UTC as published)."""
    sample = SAMPLES[name.upper()]
    raw = pl.read_csv(sample_path(name))
    raw = raw.rename({raw.columns[0]: "time"})
    other_volume = "tick_volume" if sample.volume_column == "real_volume" else "real_volume"
    return raw.select(
        pl.lit(sample.symbol).alias("symbol"),
        pl.lit(sample.timeframe).alias("timeframe"),
        pl.col("time").str.to_datetime(time_zone="UTC", time_unit="us"),
        pl.col("Open").cast(pl.Float64).alias("open"),
        pl.col("High").cast(pl.Float64).alias("high"),
        pl.col("Low").cast(pl.Float64).alias("low"),
        pl.col("Close").cast(pl.Float64).alias("close"),
        pl.col("Volume").cast(pl.Float64).round(0).cast(pl.Int64).alias(sample.volume_column),
        pl.lit(0, pl.Int64).alias(other_volume),
        pl.lit(None, pl.Int64).alias("spread"),
    ).select(["symbol", "timeframe", "time", "open", "high", "low", "close", "tick_volume", "spread", "real_volume"])
