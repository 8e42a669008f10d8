"""The two baseline models, each fed nulls the way it needs, never by dropping rows silently.

- ``lightgbm``: LightGBM's gradient-boosted trees (``LGBMRegressor``), which route a missing value
  down a learned side of every split: nulls (NaN) go in as they are.
- ``linear``: scikit-learn's ridge regression behind a median imputer (medians of the training
  rows only, so no test information leaks in; a column null in every training row is filled with
  0) and a standard scaler.

Both regress the label (a ``fwd_return_h`` log return, or ``fwd_direction_h`` in -1/0/1). Rows
whose *label* is null cannot be fitted or scored: they are excluded and counted
(:class:`NullCounts`), never silently lost. ``X`` is a 2-d float64 array (rows x features, NaN for
null), ``y`` 1-d float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mt5lab.errors import TrainingSetError

MODELS = ("lightgbm", "linear")
LIGHTGBM_DEFAULTS = {"n_estimators": 200, "learning_rate": 0.05, "num_leaves": 15, "min_child_samples": 50,
                     "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8, "reg_lambda": 1.0}


@dataclass(frozen=True)
class NullCounts:
    """What the nulls were: ``rows`` scored or fitted, ``label_null_rows`` excluded for want of a
    label, ``rows_with_null_features`` kept (the model handles them), ``null_cells`` in those, and
    how the model handled them (``handling``)."""

    rows: int
    label_null_rows: int
    rows_with_null_features: int
    null_cells: int
    handling: str

    def as_dict(self) -> dict:
        return {"rows": self.rows, "label_null_rows": self.label_null_rows,
                "rows_with_null_features": self.rows_with_null_features, "null_cells": self.null_cells,
                "handling": self.handling}


def handling(kind: str) -> str:
    return {"lightgbm": "native (LightGBM learns a side for missing values at each split)",
            "linear": "median of the training rows (0 where a feature is null in all of them)"}[check(kind)]


def check(kind: str) -> str:
    if kind not in MODELS:
        raise TrainingSetError(f"unknown model {kind!r}; expected one of {', '.join(MODELS)}")
    return kind


def null_counts(X: np.ndarray, y: np.ndarray, kind: str) -> NullCounts:
    has_label = np.isfinite(y)
    Xl = X[has_label]
    miss = ~np.isfinite(Xl)
    return NullCounts(int(has_label.sum()), int((~has_label).sum()), int(miss.any(axis=1).sum()),
                      int(miss.sum()), handling(kind))


def make(kind: str, seed: int = 0, params: dict | None = None, n_jobs: int = 1):
    """An unfitted estimator of ``kind`` (``lightgbm`` or ``linear``), deterministic given ``seed``."""
    check(kind)
    if kind == "lightgbm":
        from lightgbm import LGBMRegressor

        p = dict(LIGHTGBM_DEFAULTS) | (params or {})
        return LGBMRegressor(random_state=seed, n_jobs=n_jobs, deterministic=True, force_row_wise=True,
                             verbosity=-1, **p)
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    alpha = (params or {}).get("alpha", 1.0)
    return make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True),
                         StandardScaler(), Ridge(alpha=alpha))


def fit(kind: str, X: np.ndarray, y: np.ndarray, seed: int = 0, params: dict | None = None, n_jobs: int = 1):
    """Fit on the rows with a label; returns ``(model, NullCounts)``. Raises ``TrainingSetError``
    when no row has a label."""
    counts = null_counts(X, y, kind)
    ok = np.isfinite(y)
    if ok.sum() < 2:
        raise TrainingSetError(f"model: {int(ok.sum())} training rows have a label; cannot fit")
    model = make(kind, seed, params, n_jobs)
    Xf = X[ok]
    if kind == "linear":  # the imputer fills NaN; infinities are not values either
        Xf = np.where(np.isfinite(Xf), Xf, np.nan)
    model.fit(Xf, y[ok])
    return model, counts


def predict(model, X: np.ndarray) -> np.ndarray:
    """Predictions for every row of ``X`` (rows x features, float64; nulls handled as in fitting),
    shape ``(rows,)``.

    A row's prediction does not depend on the other rows of ``X``, bit for bit, so the online
    prediction of one symbol equals the offline one of a whole backtest. LightGBM sums each row's
    trees on its own. The linear model's last step is computed here, not by scikit-learn's
    ``X @ coef_``: BLAS picks a different kernel for one row and for many (``ddot`` against
    ``dgemv``, chosen per CPU), whose sums differ in the last bit. Here each row is multiplied by the
    coefficients and summed along the row (numpy's pairwise sum, the same for every row), plus the
    intercept: the ridge prediction ``intercept_ + sum_j x_j coef_j`` on the imputed, standardized
    features.
    """
    X = np.where(np.isfinite(X), X, np.nan)
    final = model[-1] if hasattr(model, "steps") else None
    coef = getattr(final, "coef_", None)
    if coef is not None and np.ndim(coef) == 1:
        Z = np.ascontiguousarray(model[:-1].transform(X), dtype=float)
        return np.add.reduce(Z * np.asarray(coef, dtype=float), axis=1) + float(final.intercept_)
    return np.asarray(model.predict(X), dtype=float)


def native_importance(model, kind: str, n_features: int) -> np.ndarray:
    """The model's own importance per feature, summing to 1: LightGBM's total split gain (MDI for
    boosted trees), or the linear model's ``|coefficient|`` on standardized features."""
    if kind == "lightgbm":
        v = np.asarray(model.booster_.feature_importance(importance_type="gain"), dtype=float)
    else:
        v = np.abs(np.asarray(model[-1].coef_, dtype=float))
    if v.size != n_features:
        raise ValueError(f"importance has {v.size} values for {n_features} features")
    s = v.sum()
    return v / s if s > 0 else v
