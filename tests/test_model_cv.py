"""Purged cross-validation (mt5lab.model.cv): the no-leak properties, checked on generated data,
and one small case worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mt5lab.errors import TrainingSetError
from mt5lab.model import cv
from mt5lab.training import splits

DAY = pd.Timedelta(days=1)


def frame(times_per_symbol: list[int], horizon: int, gaps: list[int] | None = None) -> pd.DataFrame:
    """Decision times on a day grid (optional gaps), one row per (time, symbol) present; the label
    of a row ends ``horizon`` distinct times later (null past the end), as training_set computes it."""
    m = len(times_per_symbol)
    steps = np.cumsum([1] + list(gaps or [1] * (m - 1)))[:m]
    grid = pd.Timestamp("2020-01-01", tz="UTC") + pd.to_timedelta(steps, unit="D")
    rows = []
    for i, k in enumerate(times_per_symbol):
        end = grid[i + horizon] if i + horizon < m else pd.NaT
        rows += [{"symbol": f"S{s}", "event_timestamp": grid[i], "label_end_timestamp": end} for s in range(k)]
    df = pd.DataFrame(rows)
    df["label_end_timestamp"] = pd.to_datetime(df["label_end_timestamp"], utc=True)
    return df


@st.composite
def cases(draw):
    m = draw(st.integers(12, 60))
    per = draw(st.lists(st.integers(1, 3), min_size=m, max_size=m))
    gaps = draw(st.lists(st.integers(1, 4), min_size=m - 1, max_size=m - 1))
    horizon = draw(st.integers(1, 6))
    folds = draw(st.integers(2, 5))
    embargo = draw(st.integers(0, 4))
    return frame(per, horizon, gaps), folds, embargo


def ns(df):
    t = df["event_timestamp"].astype("int64").to_numpy()
    e = df["label_end_timestamp"]
    return t, np.where(e.isna(), np.iinfo(np.int64).min, e.astype("int64"))


def assert_no_overlap(df, fold):
    """No training row's label window (t, e] overlaps a test row's."""
    t, e = ns(df)
    tr = fold.train[e[fold.train] != np.iinfo(np.int64).min]
    te = fold.test[e[fold.test] != np.iinfo(np.int64).min]
    overlap = (t[tr][:, None] < e[te][None, :]) & (t[te][None, :] < e[tr][:, None])
    assert not overlap.any()
    assert np.intersect1d(fold.train, fold.test).size == 0


def assert_embargo(df, block_rows, train, embargo):
    """Every labelled training row after a test block lies more than ``embargo`` distinct decision
    times past the end of the block's labels (a row without a label is never fitted)."""
    t, e = ns(df)
    uniq = np.unique(t)
    hi = max(e[block_rows].max(), t[block_rows].max())
    after = train[(t[train] > t[block_rows].max()) & (e[train] != np.iinfo(np.int64).min)]
    for i in after:
        assert ((uniq >= hi) & (uniq > t[block_rows].max()) & (uniq <= t[i])).sum() > embargo


@settings(max_examples=60, deadline=None)
@given(cases())
def test_walk_forward_tests_every_row_once_and_never_trains_on_an_overlapping_label(case):
    df, n, embargo = case
    folds = cv.walk_forward(df, n, embargo=embargo)
    assert len(folds) == n
    tested = np.concatenate([f.test for f in folds])
    assert np.unique(tested).size == tested.size, "a row tested twice in one pass"
    t, _ = ns(df)
    first = t[folds[0].test].min()
    assert set(tested) == set(np.flatnonzero(t >= first)), "every row after the first block is tested"
    for f in folds:
        assert_no_overlap(df, f)
        assert (t[f.train] < t[f.test].min()).all(), "walk-forward trains on the past only"
    reference = splits.walk_forward(df, n)  # the training stage's purged walk-forward agrees
    for a, b in zip(folds, reference, strict=True):
        assert np.array_equal(a.train, b.train) and np.array_equal(a.test, b.test)


@settings(max_examples=60, deadline=None)
@given(cases())
def test_kfold_purges_and_embargoes_both_sides(case):
    df, n, embargo = case
    folds = cv.kfold(df, n, embargo=embargo)
    tested = np.concatenate([f.test for f in folds])
    assert sorted(tested) == list(range(len(df))), "k-fold tests every row exactly once"
    for f in folds:
        assert_no_overlap(df, f)
        assert_embargo(df, f.test, f.train, embargo)


@settings(max_examples=30, deadline=None)
@given(cases(), st.integers(1, 2))
def test_cpcv_splits_and_paths(case, k):
    df, n, embargo = case
    n = max(n, 3)
    folds = cv.cpcv(df, n, k, embargo=embargo)
    from math import comb

    assert len(folds) == comb(n, k)
    for f in folds:
        assert_no_overlap(df, f)
        for g in f.groups:
            assert_embargo(df, f.blocks[g], f.train, embargo)
    paths = cv.paths(folds, n)
    assert len(paths) == comb(n, k) * k // n
    for path in paths:  # every path predicts every row exactly once, each group by a model that did not train on it
        rows = np.concatenate([np.intersect1d(folds[s].test, folds[s].blocks[g]) for s, g in path])
        assert sorted(rows) == list(range(len(df)))
        for s, g in path:
            assert g in folds[s].groups


def test_purge_and_embargo_by_hand():
    # 20 daily decisions, labels 2 bars ahead, 4 folds of 5 rows. Fold 1 tests rows 5..9.
    # Before it: row 4's label ends at t6 > t5 (overlap), row 3's at t5 (settled when the test starts: kept).
    # After it: the test labels end at t11, so row 10 (t10 < t11) is purged; embargo 1 drops row 11 (t11).
    df = frame([1] * 20, 2)
    f = cv.kfold(df, 4, embargo=1)[1]
    assert list(f.test) == [5, 6, 7, 8, 9]
    assert list(f.train) == [0, 1, 2, 3, *range(12, 20)]
    assert (f.purged, f.embargoed) == (2, 1)
    assert list(f.dropped) == [4, 10, 11]
    f0 = cv.kfold(df, 4, embargo=0)[1]
    assert list(f0.train) == [0, 1, 2, 3, *range(11, 20)]


def test_embargo_counts_bars_after_the_block_when_its_labels_end_inside_it():
    # 12 daily decisions, labels 1 bar ahead, but the middle block (rows 4..7) has no labels (a data
    # gap): its window ends at its last decision t7. Embargo 2 must drop the 2 decisions after the
    # block, rows 8 and 9, not t7 (a test time) and row 8 only.
    df = frame([1] * 12, 1)
    df.loc[4:7, "label_end_timestamp"] = pd.NaT
    f = cv.kfold(df, 3, embargo=2)[1]
    assert list(f.test) == [4, 5, 6, 7]
    assert list(f.train) == [0, 1, 2, 3, 10, 11]
    assert (f.purged, f.embargoed) == (0, 2)


def test_too_many_folds_for_the_decision_times_is_one_line():
    # 5 decision times holding 1, 1, 10, 1, 1 rows: 4 blocks of equal rows cannot all be non-empty
    df = frame([1, 1, 10, 1, 1], 1)
    for make in (lambda: cv.kfold(df, 4), lambda: cv.walk_forward(df, 3)):
        with pytest.raises(TrainingSetError, match="empty"):
            make()


def test_without_purging_the_overlap_would_be_there():
    # the property above can fail: the unpurged neighbour of a test block overlaps it
    df = frame([1] * 20, 2)
    f = cv.kfold(df, 4)[1]
    leaky = cv.CVFold(np.sort(np.concatenate([f.train, [4, 10]])), f.test, f.groups)
    with pytest.raises(AssertionError):
        assert_no_overlap(df, leaky)


def test_bad_requests_are_one_line_errors():
    df = frame([1] * 5, 1)
    with pytest.raises(TrainingSetError, match="distinct decision times cannot make"):
        cv.kfold(df, 8)
    with pytest.raises(TrainingSetError, match="embargo"):
        cv.kfold(df, 2, embargo=-1)
    with pytest.raises(TrainingSetError, match="unknown scheme"):
        cv.split(df, "random", 2)
    with pytest.raises(TrainingSetError, match="label_end_timestamp"):
        cv.walk_forward(df.drop(columns="label_end_timestamp"), 2)
