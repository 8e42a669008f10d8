"""Frames into the canonical bar schema (:data:`mt5lab.catalog.BAR_SCHEMA`): pandas or polars in, polars out."""

from __future__ import annotations

import polars as pl

from mt5lab.bars.clock import epoch_times, resolve_server_tz, to_utc
from mt5lab.catalog import BAR_COLUMNS, BAR_SCHEMA, check_timeframe
from mt5lab.errors import BarValidationError


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


def canonical(frame, timeframe: str | None = None, *, server_tz: str | None = None,
              source: str = "<frame>") -> pl.DataFrame:
    """Return ``frame`` in the canonical bar schema (column order and dtypes, ``time`` in UTC).

    ``time`` may be tz-aware (converted to UTC), or naive datetimes or integer epoch values on the
    broker's server clock (MT5's ``copy_rates_*`` arrays: int seconds): those are converted by
    :mod:`mt5lab.bars.clock` with ``server_tz``, which is then required (or ``MT5LAB_SERVER_TZ``);
    guessing a zone is how broker-time bars end up shifted by two hours. Raises
    :class:`~mt5lab.errors.BarValidationError` (DST-gap or out-of-range time, naming the row) or
    :class:`~mt5lab.errors.ConfigError` (no server clock for naive times).
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
    df = df.with_columns(server_time(df["time"], server_tz, source))
    return df.select(
        [pl.col(c).cast(t, strict=True) if c != "time" else
         pl.col("time").dt.convert_time_zone("UTC").dt.cast_time_unit("us")
         for c, t in BAR_SCHEMA.items()]
    )


def grid_tz(frame, server_tz: str | None) -> str | None:
    """The clock whose bar grid ``frame``'s bars are on: ``server_tz`` if given, UTC for tz-aware
    times (``MT5LAB_SERVER_TZ`` describes naive server-clock times), else None (= the environment's)."""
    if server_tz is not None:
        return server_tz
    tdt = to_polars(frame).schema.get("time")
    return "UTC" if isinstance(tdt, pl.Datetime) and tdt.time_zone is not None else None


def server_time(t: pl.Series, server_tz: str | None, source: str) -> pl.Series:
    """A frame's ``time`` column to tz-aware UTC (see :func:`canonical`)."""
    tdt = t.dtype
    if isinstance(tdt, pl.Datetime) and tdt.time_zone is not None:
        return t
    if not (isinstance(tdt, pl.Datetime) or tdt.is_integer()):
        raise ValueError(f"bar 'time' must be a datetime or epoch integers, got {tdt}")
    tz = resolve_server_tz(server_tz, source, required=True)
    rows = pl.int_range(1, t.len() + 1, dtype=pl.Int64, eager=True)

    def fail(rule: str, detail: str = "", row: int | None = None) -> BarValidationError:
        return BarValidationError(source, row, rule, detail)

    if not tdt.is_integer():
        naive = t.dt.cast_time_unit("us")
    else:
        naive, _ = epoch_times(t, None, fail, rows, source=source, server_tz=tz)
    return to_utc(naive, tz, fail, rows, t).alias("time")
