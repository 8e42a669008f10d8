"""Labels on Spark: the local engine's :func:`mt5lab.training.labels.compute_labels`, per symbol.

The training set's distinct ``(symbol, event_timestamp)`` keys and the timeframe's bars are grouped
by symbol (``cogroup``); each symbol's pair goes through the very same ``compute_labels`` (polars
as-of join, ``fwd_return_h`` / ``fwd_direction_h`` and ``label_end_timestamp``), Arrow in, Arrow out.
The labels are then joined back to every training-set row on ``(symbol, event_timestamp)``, so
duplicate entity rows get the same labels, as in the local engine. One symbol's bars per task:
the executor memory bound is the build's (:mod:`mt5lab.spark.build`).
"""

from __future__ import annotations

import polars as pl

from mt5lab.catalog import check_timeframe
from mt5lab.training.labels import LABEL_END, compute_labels, parse_labels


def label_ddl(labels) -> str:
    """The Spark schema of one symbol's label rows: keys, labels (DOUBLE / BIGINT), label end."""
    cols = ["symbol STRING", "event_timestamp TIMESTAMP"]
    cols += [f"{lab.name} {'DOUBLE' if lab.kind == 'return' else 'BIGINT'}" for lab in parse_labels(labels)]
    return ", ".join([*cols, f"{LABEL_END} TIMESTAMP"])


def _arrow_schema(labels):
    import pyarrow as pa

    fields = [("symbol", pa.string()), ("event_timestamp", pa.timestamp("us", tz="UTC"))]
    fields += [(lab.name, pa.float64() if lab.kind == "return" else pa.int64()) for lab in labels]
    return pa.schema([*fields, (LABEL_END, pa.timestamp("us", tz="UTC"))])


def group_labels(timeframe: str, labels):
    """The function each symbol's (keys, bars) pair runs: Arrow -> Arrow label rows."""
    tf = check_timeframe(timeframe)
    labs = parse_labels(labels)
    schema = _arrow_schema(labs)

    def utc_us(frame: pl.DataFrame, col: str) -> pl.DataFrame:
        return frame.with_columns(pl.col(col).dt.convert_time_zone("UTC").dt.cast_time_unit("us"))

    def run(keys_table, bars_table):
        keys = utc_us(pl.from_arrow(keys_table), "event_timestamp")
        if keys.height == 0:
            return schema.empty_table()
        bars = utc_us(pl.from_arrow(bars_table), "time")
        labels_part = compute_labels(keys, bars, tf, labs)
        return pl.concat([keys.select("symbol", "event_timestamp"), labels_part], how="horizontal") \
            .to_arrow().cast(schema)

    return run


def with_labels(sdf, bars, timeframe: str, labels):
    """``sdf`` (a training set on Spark: ``symbol``, ``event_timestamp``, ...) with the labels and
    ``label_end_timestamp`` appended; ``bars``: a Spark DataFrame of canonical bars (``symbol``,
    ``time``, ``close``; UTC instants) of ``timeframe``. No labels: ``sdf`` unchanged."""
    labs = parse_labels(labels)
    if not labs:
        return sdf
    names = [lab.name for lab in labs]
    keys = sdf.select("symbol", "event_timestamp").distinct()
    bars = bars.select("symbol", "time", "close").join(keys.select("symbol").distinct(), "symbol", "left_semi")
    per_symbol = (keys.groupBy("symbol").cogroup(bars.groupBy("symbol"))
                  .applyInArrow(group_labels(timeframe, names), label_ddl(names)))
    out = sdf.join(per_symbol, ["symbol", "event_timestamp"], "left")
    return out.select(*sdf.columns, *(lab.name for lab in labs), LABEL_END)
