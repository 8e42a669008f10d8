"""Out-of-fold feature importance: permutation (MDA) per feature and per feature view (clustered
MDA), next to the model's own importance (MDI / gain).

Source: López de Prado, *Advances in Financial Machine Learning* (2018), ch. 8.3.2 (MDA, computed
on the out-of-sample fold only) and *Machine Learning for Asset Managers* (2020), ch. 6.5
(clustered MDA: shuffle every feature of a cluster at once). mt5lab's clusters are the six Feast
feature views of the catalog, the natural groups of the 42 features.

The score is the out-of-fold IC (Pearson correlation of prediction and label, :func:`mt5lab.model.
metrics.ic`). For a fold, feature ``j``'s MDA is ``IC(test) - IC(test with column j shuffled)``,
averaged over ``repeats`` shuffles; a view's MDA shuffles each of its features (independently) at
once. Across folds: the mean and the standard error. Positive = the model used the feature for
out-of-sample skill; near zero or negative = it did not (or its information is redundant with
another feature of the same view, which the per-view number still shows).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from mt5lab.catalog import BY_NAME, VIEW_NAMES
from mt5lab.model import estimators
from mt5lab.model.metrics import ic


def view_of(feature: str) -> str:
    f = BY_NAME.get(feature)
    return f.view if f else "other"


def fold_mda(model, X: np.ndarray, y: np.ndarray, features: list[str], rng: np.random.Generator,
             repeats: int = 1, by_view: bool = True) -> tuple[np.ndarray, dict[str, float]]:
    """MDA of one fitted model on its test rows ``X``, ``y`` (rows with a label only): per feature
    (array aligned with ``features``) and per view (dict)."""
    ok = np.isfinite(y)
    X, y = X[ok], y[ok]
    base = ic(estimators.predict(model, X), y)
    per = np.zeros(len(features))
    views: dict[str, float] = {}
    if not np.isfinite(base) or len(y) < 3:
        return np.full(len(features), np.nan), {}

    def drop(cols: list[int]) -> float:
        tot = 0.0
        for _ in range(repeats):
            Xp = X.copy()
            for c in cols:
                Xp[:, c] = Xp[rng.permutation(len(y)), c]
            s = ic(estimators.predict(model, Xp), y)
            tot += base - (0.0 if not np.isfinite(s) else s)
        return tot / repeats

    for j in range(len(features)):
        per[j] = drop([j])
    if by_view:
        groups: dict[str, list[int]] = {}
        for j, f in enumerate(features):
            groups.setdefault(view_of(f), []).append(j)
        for v, cols in groups.items():
            views[v] = drop(cols)
    return per, views


def summarize(features: list[str], mda_folds: list[np.ndarray], view_folds: list[dict],
              mdi_folds: list[np.ndarray]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(by_feature, by_view)`` tables: mean and standard error over folds of MDA, and mean MDI.

    ``by_feature``: ``feature``, ``view``, ``mda``, ``mda_se``, ``mdi``, sorted by ``mda``
    descending. ``by_view``: ``view``, ``features``, ``mda``, ``mda_se``, ``mdi`` (sum of its
    features' MDI), in catalog order.
    """
    def mean_se(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = np.isfinite(stack).sum(axis=0)
        mean = np.nanmean(stack, axis=0) if stack.size else np.full(stack.shape[1:], np.nan)
        sd = np.nanstd(stack, axis=0, ddof=1) if stack.shape[0] > 1 else np.full(stack.shape[1:], np.nan)
        return mean, sd / np.sqrt(np.maximum(n, 1))

    with np.errstate(all="ignore"), warnings.catch_warnings():  # all-NaN columns give NaN quietly
        warnings.simplefilter("ignore", RuntimeWarning)
        m, se = mean_se(np.vstack(mda_folds)) if mda_folds else (np.full(len(features), np.nan),) * 2
        mdi = np.nanmean(np.vstack(mdi_folds), axis=0) if mdi_folds else np.full(len(features), np.nan)
        by_feature = pd.DataFrame({"feature": features, "view": [view_of(f) for f in features],
                                   "mda": m, "mda_se": se, "mdi": mdi})
        names = [v for v in VIEW_NAMES if any(view_of(f) == v for f in features)]
        names += sorted({view_of(f) for f in features} - set(names))
        vs = np.array([[d.get(v, np.nan) for v in names] for d in view_folds]) if view_folds else \
            np.full((0, len(names)), np.nan)
        vm, vse = mean_se(vs) if len(vs) else (np.full(len(names), np.nan),) * 2
    by_view = pd.DataFrame({"view": names,
                            "features": [sum(view_of(f) == v for f in features) for v in names],
                            "mda": vm, "mda_se": vse,
                            "mdi": [float(by_feature.loc[by_feature["view"] == v, "mdi"].sum()) for v in names]})
    return by_feature.sort_values("mda", ascending=False, kind="stable").reset_index(drop=True), by_view
