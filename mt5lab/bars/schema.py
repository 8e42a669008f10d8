"""Frames into the canonical bar schema (:data:`mt5lab.catalog.BAR_SCHEMA`): pandas or polars in, polars out."""

from __future__ import annotations

import polars as pl

from mt5lab.catalog import BAR_COLUMNS, BAR_SCHEMA, check_timeframe


def to_polars(frame) -> pl.DataFrame:
    """Accept a polars or pandas frame; return polars without copying polars input."""
    if isinstance(frame, pl.DataFrame):
        return frame
    if isinstance(frame, pl.LazyFrame):
        return frame.collect()
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover
        pd = None
    if pd is not None and isinstance(frame, pd.DataFrame):
        return pl.from_pandas(frame.reset_index(drop=True))
    raise TypeError(f"expected a polars or pandas DataFrame, got {type(frame).__name__}")


def canonical(frame, timeframe: str | None = None) -> pl.DataFrame:
    """Return ``frame`` in the canonical bar schema (column order and dtypes).

    ``time`` must already be timezone-aware; naive times are refused here because guessing a zone
    is how broker-time bars end up shifted by two hours. Readers convert with a stated ``server_tz``.
    """
    df = to_polars(frame)
    if "timeframe" not in df.columns:
        if timeframe is None:
            raise ValueError("bars have no 'timeframe' column and no timeframe was given")
        df = df.with_columns(pl.lit(check_timeframe(timeframe)).alias("timeframe"))
    if "spread" not in df.columns:
        df = df.with_columns(pl.lit(None, pl.Int64).alias("spread"))
    if "real_volume" not in df.columns:
        df = df.with_columns(pl.lit(0, pl.Int64).alias("real_volume"))
    missing = [c for c in BAR_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"bars lack required columns: {', '.join(missing)}")
    tdt = df.schema["time"]
    if not isinstance(tdt, pl.Datetime) or tdt.time_zone is None:
        raise ValueError("bar 'time' must be a timezone-aware datetime (convert with server_tz)")
    return df.select(
        [pl.col(c).cast(t, strict=True) if c != "time" else
         pl.col("time").dt.convert_time_zone("UTC").dt.cast_time_unit("us")
         for c, t in BAR_SCHEMA.items()]
    )

