"""File side of ``mt5lab training-set``: read an entity file, or make decision times, then save.

Entity files are Parquet or CSV with ``symbol`` and ``event_timestamp``; CSV times must carry an
offset (``2020-01-02T00:00:00Z`` or ``+00:00``): a naive time is refused, never guessed.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl

from mt5lab.errors import TrainingSetError


def read_entities(path: str | Path) -> pl.DataFrame:
    """An entity frame from Parquet or CSV; errors name the file, the row and the rule."""
    p = Path(path)
    if not p.is_file():
        raise TrainingSetError(f"{p}: no such file")
    if p.suffix.lower() in (".parquet", ".pq"):
        return pl.read_parquet(p)
    if p.suffix.lower() not in (".csv", ".txt"):
        raise TrainingSetError(f"{p}: unknown entity file type (use .parquet or .csv)")
    df = pl.read_csv(p, infer_schema=False)
    if "event_timestamp" not in df.columns:
        return df  # the missing column is reported by training_set, with the file name
    raw = df["event_timestamp"]
    parsed = raw.str.to_datetime(time_unit="us", strict=False)
    bad = parsed.is_null() & raw.is_not_null()
    if bad.any():
        row = int(bad.arg_max()) + 1
        raise TrainingSetError(f"{p}: row {row}: event_timestamp {raw[row - 1]!r} is not an ISO time")
    if parsed.dtype.time_zone is None:
        raise TrainingSetError(f"{p}: row 1: event_timestamp {raw[0]!r} has no UTC offset; write times "
                               f"like 2020-01-02T00:00:00Z (naive times are never guessed)")
    return df.with_columns(parsed.dt.convert_time_zone("UTC").alias("event_timestamp"))


def parse_time(value: str, name: str) -> datetime:
    """A CLI time: ISO date or datetime; a date or a time without offset means UTC."""
    from datetime import UTC

    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise TrainingSetError(f"--{name} {value!r}: not an ISO date or time") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def run(*, entities: str | None, symbols: str | None, start: str | None, end: str | None, timeframe: str,
        every: int, features: tuple[str, ...], labels: tuple[str, ...], out: str, full_feature_names: bool,
        profile=None, saved_dataset: str | None = None) -> dict:
    """The ``training-set`` verb: returns the manifest of the written file."""
    from mt5lab.storage import open_store
    from mt5lab.training.assemble import decision_times, normalize_entities, training_set
    from mt5lab.training.manifest import save_training_set

    if bool(entities) == bool(symbols):
        raise TrainingSetError("give either --entities FILE or --symbols A,B (with --start and --end)")
    if not str(out).endswith(".parquet"):
        raise TrainingSetError(f"--out {out!r}: the output must be a .parquet file")
    store = open_store(profile)
    if entities:
        frame = read_entities(entities)
        normalize_entities(frame, source=str(entities))  # errors name the file
    else:
        if not (start and end):
            raise TrainingSetError("--symbols needs --start and --end")
        names = [s.strip() for s in symbols.split(",") if s.strip()]
        frame = decision_times(names, parse_time(start, "start"), parse_time(end, "end"), timeframe,
                               every, store=store)
    feats = list(features) if len(features) > 1 or (features and ":" in features[0]) else \
        (features[0] if features else "mt5_v1")
    df = training_set(frame, feats, timeframe=timeframe, labels=list(labels),
                      full_feature_names=full_feature_names, to="polars", store=store)
    return save_training_set(df, out, features=feats, timeframe=timeframe, labels=list(labels),
                             full_feature_names=full_feature_names, profile=profile,
                             saved_dataset=saved_dataset)
