"""Cross-validation that cannot leak: purged walk-forward, purged k-fold with an embargo, and
combinatorial purged cross-validation (CPCV).

Source: López de Prado, *Advances in Financial Machine Learning* (2018), ch. 7 (purging and
embargo, sections 7.4.1-7.4.3) and ch. 12 (CPCV, section 12.4). Built on
:mod:`mt5lab.training.splits`: the same time blocks (contiguous runs of distinct decision times with
about equal row counts; rows with the same decision time never split) and the same purge rule.

Per row ``i``: ``t_i`` is its decision time (``event_timestamp``) and ``e_i`` its
``label_end_timestamp``, the instant its label is settled. Its label window is ``(t_i, e_i]``.

- **Purge.** For each contiguous test block ``G`` with window ``[min t_G, max e_G]``, a training
  row is dropped when its label window overlaps it: ``t_i < max e_G`` and ``e_i > min t_G``. Rows
  with no label (null ``label_end_timestamp``) have no window and are never purged (they are not
  trained on either: :mod:`mt5lab.model.evaluate` counts them).
- **Embargo** (``embargo`` bars): after each test block, the training rows at the first
  ``embargo`` distinct decision times after ``max t_G`` and at or after ``max e_G`` (where the
  purge stops) are dropped too (serially correlated features leak across the boundary even when labels do not; AFML 7.4.2
  extends the test window's end by the embargo). Walk-forward trains only on the past, so there is
  nothing after its test block to embargo.

Every function returns a list of :class:`CVFold` with row positions (numpy ``int64``, time
ordered) into the frame, and counts of what was purged and embargoed. Raises
:class:`mt5lab.errors.TrainingSetError` for impossible requests (more blocks than decision times).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from math import comb

import numpy as np

from mt5lab.errors import TrainingSetError
from mt5lab.training.labels import LABEL_END
from mt5lab.training.splits import _blocks, _times

SCHEMES = ("walk-forward", "kfold", "cpcv")


@dataclass(frozen=True)
class CVFold:
    """One split: ``train`` and ``test`` row positions, ``groups`` the test block numbers, how
    many candidate training rows the purge and the embargo removed, and those rows (``dropped``)."""

    train: np.ndarray
    test: np.ndarray
    groups: tuple[int, ...]
    purged: int = 0
    embargoed: int = 0
    blocks: list = field(default_factory=list, repr=False, compare=False)
    dropped: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64), repr=False, compare=False)


def times(df, time_col: str = "event_timestamp", label_end: str = LABEL_END):
    """``(t, e)``: decision times and label ends of ``df`` (pandas or polars) as int64 ns since the
    epoch; a null label end is the int64 minimum (no window)."""
    return _times(df, time_col, label_end, None)


def _clean(train: np.ndarray, test_blocks: list[np.ndarray], t: np.ndarray, e: np.ndarray,
           uniq: np.ndarray, embargo: int) -> tuple[np.ndarray, int, int, np.ndarray]:
    keep = np.ones(train.size, dtype=bool)
    purged = 0
    embargoed = np.zeros(train.size, dtype=bool)
    tt, te = t[train], e[train]
    for g in test_blocks:
        lo = int(t[g].min())
        ge = e[g]
        hi = int(max(ge.max(), t[g].max()))
        overlap = (tt < hi) & (te > lo)
        purged += int((overlap & keep).sum())
        keep &= ~overlap
        if embargo > 0:  # the first `embargo` decision times after the block, at or after its labels' end
            pos = int(np.searchsorted(uniq, max(hi, int(t[g].max()) + 1), side="left"))
            if pos < uniq.size:
                until = int(uniq[min(pos + embargo, uniq.size) - 1])
                emb = (tt >= hi) & (tt <= until) & keep
                embargoed |= emb
                keep &= ~emb
    out = train[keep]
    return out[np.argsort(t[out], kind="stable")], purged, int(embargoed.sum()), np.sort(train[~keep])


def _nonempty(blocks: list[np.ndarray]) -> list[np.ndarray]:
    empty = [i for i, b in enumerate(blocks) if b.size == 0]
    if empty:
        raise TrainingSetError(f"cv: {len(blocks)} blocks of about equal rows leave block {empty[0]} empty "
                               f"(the rows sit at too few decision times): use fewer folds")
    return blocks


def _check(n_folds: int, embargo: int) -> None:
    if n_folds < 2:
        raise TrainingSetError(f"cv: need at least 2 folds, got {n_folds}")
    if embargo < 0:
        raise TrainingSetError(f"cv: embargo must be >= 0 bars, got {embargo}")


def walk_forward(df, n_folds: int = 5, *, embargo: int = 0, train_blocks: int | None = None,
                 time_col: str = "event_timestamp", label_end: str = LABEL_END) -> list[CVFold]:
    """Purged walk-forward: ``n_folds + 1`` blocks; fold ``k`` tests block ``k + 1`` and trains on
    the blocks before it (all, or the last ``train_blocks``), purged. Every row after the first
    block is tested exactly once. ``embargo`` is accepted for a uniform interface and has no
    effect (no training row lies after a test block)."""
    if n_folds < 1:
        raise TrainingSetError(f"cv: need at least 1 walk-forward fold, got {n_folds}")
    _check(2, embargo)
    t, e = _times(df, time_col, label_end, None)
    uniq = np.unique(t)
    blocks = _nonempty(_blocks(t, [1.0] * (n_folds + 1)))
    folds = []
    for k in range(n_folds):
        first = 0 if train_blocks is None else max(0, k + 1 - train_blocks)
        train = np.concatenate(blocks[first:k + 1])
        test = blocks[k + 1]
        train, purged, emb, dropped = _clean(train, [test], t, e, uniq, 0)
        folds.append(CVFold(train, test[np.argsort(t[test], kind="stable")], (k + 1,), purged, emb, blocks, dropped))
    return folds


def kfold(df, n_folds: int = 5, *, embargo: int = 0, time_col: str = "event_timestamp",
          label_end: str = LABEL_END) -> list[CVFold]:
    """Purged k-fold with an embargo (AFML 7.4): ``n_folds`` contiguous blocks, each tested once,
    trained on all the others (past and future), purged and embargoed."""
    return cpcv(df, n_folds, 1, embargo=embargo, time_col=time_col, label_end=label_end)


def cpcv(df, n_groups: int = 6, n_test_groups: int = 2, *, embargo: int = 0,
         time_col: str = "event_timestamp", label_end: str = LABEL_END) -> list[CVFold]:
    """Combinatorial purged CV (AFML 12.4): ``n_groups`` blocks; every choice of ``n_test_groups`` of
    them is one split (``C(N, k)`` splits), trained on the rest, purged and embargoed around each
    test block. :func:`paths` assembles them into ``k/N * C(N, k)`` full out-of-sample paths."""
    _check(n_groups, embargo)
    if not 1 <= n_test_groups < n_groups:
        raise TrainingSetError(f"cv: test groups must be between 1 and {n_groups - 1}, got {n_test_groups}")
    t, e = _times(df, time_col, label_end, None)
    uniq = np.unique(t)
    blocks = _nonempty(_blocks(t, [1.0] * n_groups))
    folds = []
    for groups in combinations(range(n_groups), n_test_groups):
        test_blocks = [blocks[g] for g in groups]
        train = np.concatenate([blocks[g] for g in range(n_groups) if g not in groups])
        test = np.concatenate(test_blocks)
        train, purged, emb, dropped = _clean(train, test_blocks, t, e, uniq, embargo)
        folds.append(CVFold(train, test[np.argsort(t[test], kind="stable")], groups, purged, emb, blocks, dropped))
    return folds


def paths(folds: list[CVFold], n_groups: int) -> list[list[tuple[int, int]]]:
    """CPCV backtest paths: each path is, for every group ``g`` in order, the ``(split index, g)``
    whose model predicts that group. Group ``g`` is tested in ``C(N-1, k-1)`` splits; path ``p``
    takes its ``p``-th (AFML 12.4, figure 12.1)."""
    per_group: dict[int, list[int]] = {g: [] for g in range(n_groups)}
    for i, f in enumerate(folds):
        for g in f.groups:
            per_group[g].append(i)
    n_paths = len(per_group[0])
    k = len(folds[0].groups) if folds else 1
    if folds and n_paths != comb(n_groups - 1, k - 1):
        raise TrainingSetError("cv: folds do not form complete CPCV paths")
    return [[(per_group[g][p], g) for g in range(n_groups)] for p in range(n_paths)]


def split(df, scheme: str, n_folds: int, *, embargo: int = 0, test_groups: int = 2) -> list[CVFold]:
    """The folds of ``scheme`` (``walk-forward``, ``kfold`` or ``cpcv``; for CPCV ``n_folds`` is the
    number of groups N and ``test_groups`` k)."""
    if scheme == "walk-forward":
        return walk_forward(df, n_folds, embargo=embargo)
    if scheme == "kfold":
        return kfold(df, n_folds, embargo=embargo)
    if scheme == "cpcv":
        return cpcv(df, n_folds, test_groups, embargo=embargo)
    raise TrainingSetError(f"cv: unknown scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")
