"""Purged time-ordered splits and walk-forward folds: no label reaches into the next split."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import polars as pl
import pytest

from mt5lab.errors import TrainingSetError
from mt5lab.training.splits import train_val_test, walk_forward

H = 5  # label horizon in bars


def frame(n_days: int = 300, symbols: int = 3, seed: int = 0) -> pl.DataFrame:
    """Decision times at weekday closes; each row's label ends H bars later (weekends skipped)."""
    days, d = [], datetime(2020, 1, 6, tzinfo=UTC)
    while len(days) < n_days + H:
        if d.weekday() < 5:
            days.append(d)
        d += timedelta(days=1)
    rows = [(f"S{s}", days[i], days[i + H] if i % 17 else None)  # a few rows without a label
            for i in range(n_days) for s in range(symbols)]
    rng = np.random.default_rng(seed)
    rows = [rows[i] for i in rng.permutation(len(rows))]  # splits must not rely on input order
    return pl.DataFrame(rows, schema={"symbol": pl.String, "event_timestamp": pl.Datetime("us", "UTC"),
                                      "label_end_timestamp": pl.Datetime("us", "UTC")}, orient="row")


def _check_purged(df: pl.DataFrame, earlier: np.ndarray, later: np.ndarray) -> None:
    t, end = df["event_timestamp"], df["label_end_timestamp"]
    start = t.gather(later).min()
    assert t.gather(earlier).max() < start  # time-ordered
    ends = end.gather(earlier).drop_nulls()
    assert (ends <= start).all()  # no label of the earlier split reaches into the later one


def test_train_val_test_purged_and_ordered():
    df = frame()
    s = train_val_test(df, (0.6, 0.2, 0.2))
    _check_purged(df, s["train"], s["validation"])
    _check_purged(df, s["validation"], s["test"])
    used = np.concatenate(list(s.values()))
    assert len(set(used.tolist())) == len(used)  # disjoint
    # exactly the rows whose label crosses a boundary are purged (counted independently here)
    t = df["event_timestamp"].to_numpy()
    end = df["label_end_timestamp"].to_numpy()
    v0, t0 = t[s["validation"]].min(), t[s["test"]].min()
    crossing = ((t < v0) & (end > v0)) | ((t >= v0) & (t < t0) & (end > t0))
    assert df.height - len(used) == int(np.nansum(crossing.astype(float))) > 0
    # shares roughly as asked (boundaries fall on whole decision times)
    assert abs(len(s["train"]) / df.height - 0.6) < 0.05
    # a decision time shared by several symbols never straddles a boundary
    assert not set(t[s["train"]].tolist()) & set(t[s["validation"]].tolist())


def test_two_way_split_and_pandas_input():
    df = frame().to_pandas()
    s = train_val_test(df, (0.8, 0.2))
    assert set(s) == {"train", "test"}
    _check_purged(pl.from_pandas(df), s["train"], s["test"])
    assert isinstance(df.iloc[s["train"]], pd.DataFrame)


@pytest.mark.parametrize("train_blocks", [None, 2])
def test_walk_forward_folds_purged(train_blocks):
    df = frame(400)
    folds = walk_forward(df, 4, train_blocks=train_blocks)
    assert len(folds) == 4
    t = df["event_timestamp"].to_numpy()
    for k, f in enumerate(folds):
        _check_purged(df, f.train, f.test)
        if k:
            assert t[f.test].min() > t[folds[k - 1].test].max()  # test windows walk forward
            if train_blocks is None:
                assert len(f.train) > len(folds[k - 1].train)  # expanding window
    if train_blocks == 2:
        assert t[folds[3].train].min() > t[folds[0].train].max()  # rolling window


def test_without_labels_a_purge_duration_is_required():
    df = frame().drop("label_end_timestamp")
    with pytest.raises(TrainingSetError, match="no purge duration"):
        train_val_test(df)
    s = train_val_test(df, purge=timedelta(days=7))
    t = df["event_timestamp"]
    assert (t.gather(s["train"]).max() + timedelta(days=7)) <= t.gather(s["validation"]).min()


def test_split_errors():
    with pytest.raises(TrainingSetError, match="2 or 3 fractions"):
        train_val_test(frame(), (1.0,))
    with pytest.raises(TrainingSetError, match="positive"):
        train_val_test(frame(), (0.5, 0.0, 0.5))
    with pytest.raises(TrainingSetError, match="cannot make"):
        train_val_test(frame(2, 1), (0.4, 0.3, 0.3))
