"""Labels: what happened *after* a decision time. Computed only for training sets, never stored.

``fwd_return_h`` = ``ln(close[k + h] / close[k])`` where bar ``k`` is the last bar of the symbol
closed at the decision time ``t`` (``time + timeframe <= t``, the same availability rule as the
features) and ``k + h`` is the bar ``h`` bars after it in the stored series (gaps are skipped, not
counted). ``fwd_direction_h`` is its sign (-1, 0, 1). Both are null where bar ``k`` does not exist
(``t`` before the first close) or where the horizon runs past the stored data.

Look-ahead, on purpose: a label reads bars up to ``h`` bars after ``t``. That is what a target is,
and why labels live only here, never in the feature store, and why splits must purge rows whose
label reaches into the next split (:mod:`mt5lab.training.splits`, using ``label_end_timestamp``: the close time
of the furthest bar any requested label reads).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl

from mt5lab.catalog import bar_duration
from mt5lab.errors import MaxLossExceeded, TrainingSetError

LABEL_END = "label_end_timestamp"
_PATTERN = re.compile(r"^fwd_(return|direction)_([1-9][0-9]*)$")


@dataclass(frozen=True)
class Label:
    name: str
    kind: str  # "return" or "direction"
    horizon: int  # bars

    @property
    def dtype(self) -> pl.DataType:
        return pl.Float64() if self.kind == "return" else pl.Int64()


def parse_label(name: str) -> Label:
    m = _PATTERN.match(str(name).strip())
    if not m:
        raise TrainingSetError(f"unknown label {name!r}: expected fwd_return_<h> or fwd_direction_<h> "
                               f"with h a positive number of bars, e.g. fwd_return_5")
    return Label(m.group(0), m.group(1), int(m.group(2)))


def parse_labels(names) -> list[Label]:
    if isinstance(names, str):
        names = [names]
    out = [parse_label(n) for n in names or ()]
    seen = [lab.name for lab in out]
    dup = sorted({n for n in seen if seen.count(n) > 1})
    if dup:
        raise TrainingSetError(f"label requested twice: {', '.join(dup)}")
    return out


def max_horizon(labels) -> int:
    return max((lab.horizon for lab in parse_labels(labels)), default=0)


def compute_labels(keys: pl.DataFrame, bars: pl.DataFrame, timeframe: str, labels: list[Label]) -> pl.DataFrame:
    """One row per entity row (input order): the labels, then ``label_end_timestamp``.

    ``keys``: ``symbol``, ``event_timestamp``. ``bars``: canonical bars of ``timeframe`` (any order).
    """
    n = keys.height
    horizons = sorted({lab.horizon for lab in labels})
    step = bar_duration(timeframe)
    b = (bars.select("symbol", (pl.col("time") + step).alias("__close_t"), "close")
         .sort(["symbol", "__close_t"])
         .with_columns([pl.col("close").shift(-h).over("symbol").alias(f"__c{h}") for h in horizons]
                       + [pl.col("__close_t").shift(-h).over("symbol").alias(f"__t{h}") for h in horizons]))
    left = keys.select("symbol", "event_timestamp").with_row_index("__row")
    unit = left.schema["event_timestamp"].time_unit
    b = b.with_columns(pl.col("__close_t").dt.cast_time_unit(unit if unit == "ns" else "us"))
    if unit != "ns":
        left = left.with_columns(pl.col("event_timestamp").dt.cast_time_unit("us"))
    j = (left.sort("event_timestamp")
         .join_asof(b, left_on="event_timestamp", right_on="__close_t", by="symbol", strategy="backward",
                    check_sortedness=False)
         .sort("__row"))
    if j.height != n:
        raise MaxLossExceeded(f"label join returned {j.height} rows for {n} entity rows")
    cols = []
    for lab in labels:
        ret = (pl.col(f"__c{lab.horizon}") / pl.col("close")).log()
        ret = pl.when(ret.is_finite()).then(ret)
        expr = ret if lab.kind == "return" else ret.sign().cast(pl.Int64)
        cols.append(expr.cast(lab.dtype).alias(lab.name))
    hmax = horizons[-1]
    cols.append(pl.col(f"__t{hmax}").dt.cast_time_unit("us").alias(LABEL_END))
    return j.select(cols)
