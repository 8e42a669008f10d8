"""Time-ordered train / validation / test splits and walk-forward folds, purged of label overlap.

A row's label is settled only at ``label_end_timestamp`` (the close of the furthest bar its labels
read, :mod:`mt5lab.training.labels`). A row of an earlier split whose label end is after the first decision
time of the next split is dropped ("purged"): otherwise the model would train on an outcome that
happens inside the period it is evaluated on, the classic leak of overlapping labels. The gap
between splits is therefore at least the label horizon, measured in the data's own bars (weekends
and holidays included), not in a calendar guess. Rows with the same decision time always land in
the same split. Without labels, give ``purge`` (a duration at least the horizon).

The functions return row positions (numpy ``int64``) into the frame, for ``df.iloc[rows]`` (pandas)
or ``df[rows]`` (polars).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from mt5lab.errors import TrainingSetError
from mt5lab.training.labels import LABEL_END


@dataclass(frozen=True)
class Fold:
    train: np.ndarray
    test: np.ndarray


def _times(df, time_col: str, label_end: str | None, purge: timedelta | None):
    """Decision times and label ends as int64 nanoseconds since the epoch (label end: NaT -> min)."""
    import polars as pl

    frame = df if isinstance(df, pl.DataFrame) else pl.from_pandas(df[[c for c in (time_col, label_end)
                                                                        if c and c in df.columns]])
    if time_col not in frame.columns:
        raise TrainingSetError(f"splits: no column {time_col!r}")
    if frame[time_col].null_count():
        raise TrainingSetError(f"splits: {time_col} has nulls")
    t = frame[time_col].dt.cast_time_unit("ns").dt.epoch("ns").to_numpy()
    if label_end and label_end in frame.columns:
        e = frame[label_end].dt.cast_time_unit("ns").dt.epoch("ns").fill_null(np.iinfo(np.int64).min)
        return t, e.to_numpy()
    if purge is None:
        raise TrainingSetError(f"splits: no {label_end!r} column (build the training set with labels) "
                               f"and no purge duration given")
    return t, t + int(purge / timedelta(microseconds=1)) * 1000


def _blocks(t: np.ndarray, fractions) -> list[np.ndarray]:
    """Contiguous blocks of unique decision times with about the given shares of rows."""
    fr = np.asarray(fractions, dtype=float)
    if (fr <= 0).any():
        raise TrainingSetError(f"splits: fractions must be positive, got {list(fractions)}")
    uniq, counts = np.unique(t, return_counts=True)
    if len(uniq) < len(fr):
        raise TrainingSetError(f"splits: {len(uniq)} distinct decision times cannot make {len(fr)} splits")
    cum = np.cumsum(counts) / counts.sum()
    cuts = np.searchsorted(cum, np.cumsum(fr / fr.sum())[:-1], side="left") + 1
    cuts = np.clip(cuts, np.arange(1, len(fr)), len(uniq) - np.arange(len(fr) - 1, 0, -1))
    edges = np.concatenate(([uniq[0]], uniq[cuts], [np.iinfo(np.int64).max]))
    return [np.flatnonzero((t >= lo) & (t < hi)) for lo, hi in zip(edges[:-1], edges[1:], strict=True)]


def _purge(rows: np.ndarray, end: np.ndarray, next_start: int) -> np.ndarray:
    return rows[end[rows] <= next_start]


def train_val_test(df, fractions=(0.7, 0.15, 0.15), *, time_col: str = "event_timestamp",
                   label_end: str = LABEL_END, purge: timedelta | None = None) -> dict[str, np.ndarray]:
    """``{"train", "validation", "test"}`` row positions, in time order, each purged against the
    next split. Two fractions give ``{"train", "test"}``."""
    if len(fractions) not in (2, 3):
        raise TrainingSetError("splits: give 2 or 3 fractions (train, [validation,] test)")
    t, end = _times(df, time_col, label_end, purge)
    blocks = _blocks(t, fractions)
    names = ["train", "validation", "test"] if len(fractions) == 3 else ["train", "test"]
    out = {}
    for i, name in enumerate(names):
        rows = blocks[i]
        if i + 1 < len(blocks) and len(blocks[i + 1]):
            rows = _purge(rows, end, int(t[blocks[i + 1]].min()))
        out[name] = rows[np.argsort(t[rows], kind="stable")]
    return out


def walk_forward(df, n_folds: int = 5, *, train_blocks: int | None = None, time_col: str = "event_timestamp",
                 label_end: str = LABEL_END, purge: timedelta | None = None) -> list[Fold]:
    """Walk-forward folds: the time range is cut into ``n_folds + 1`` equal-row blocks; fold ``k``
    tests on block ``k + 1`` and trains on the blocks before it (all of them, or the last
    ``train_blocks``), purged of rows whose label ends after the test block starts."""
    if n_folds < 1:
        raise TrainingSetError("splits: n_folds must be at least 1")
    t, end = _times(df, time_col, label_end, purge)
    blocks = _blocks(t, [1.0] * (n_folds + 1))
    folds = []
    for k in range(n_folds):
        first = 0 if train_blocks is None else max(0, k + 1 - train_blocks)
        train = np.concatenate(blocks[first:k + 1])
        test = blocks[k + 1]
        train = _purge(train, end, int(t[test].min()))
        folds.append(Fold(train[np.argsort(t[train], kind="stable")], test[np.argsort(t[test], kind="stable")]))
    return folds
