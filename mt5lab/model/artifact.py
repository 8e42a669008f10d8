"""A saved model and its contract: the feature service and catalog it was trained on.

A model directory holds ``model.joblib`` (the fitted estimator: a LightGBM ``LGBMRegressor`` or a
scikit-learn pipeline; joblib/pickle, so load only model directories you trust, like any pickled
model) and ``contract.json``::

    {"format": "mt5lab.model/1", "feature_service": "mt5_v1", "catalog_hash": "...",
     "timeframe": "D1", "label": "fwd_return_5", "features": [...42 names, in fit order...],
     "model": "lightgbm", "params": {...}, "seed": 0, "train_rows": ..., "train_start": ISO,
     "train_end": ISO, "training_set_hash": "sha256:...", "nulls": {...}, "mt5lab_version": "..."}

:func:`load` refuses a model whose contract does not match, with one line
(:class:`ModelContractError`, exit code 3): a catalog hash other than this mt5lab's catalog, or a
registry whose feature service (``feast apply``'d for the timeframe) carries another catalog hash.
The model then sees exactly the features, in exactly the order, it was trained on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mt5lab.catalog import catalog_hash
from mt5lab.errors import Mt5LabError

FORMAT = "mt5lab.model/1"
CONTRACT = "contract.json"
MODEL = "model.joblib"


class ModelContractError(Mt5LabError):
    """A model directory is missing, malformed, or its contract does not match the catalog or the
    registry. One line; nothing is predicted."""

    exit_code = 3


@dataclass
class SavedModel:
    """A loaded model: ``estimator``, ``contract`` (dict, see module docstring), ``path``."""

    estimator: object
    contract: dict
    path: Path

    @property
    def features(self) -> list[str]:
        return list(self.contract["features"])

    def predict_frame(self, frame) -> np.ndarray:
        """Predictions for the rows of ``frame`` (pandas or polars) holding the contract's features."""
        from mt5lab.model.estimators import predict
        from mt5lab.model.evaluate import matrix, to_pandas

        pdf = to_pandas(frame)
        missing = [f for f in self.features if f not in pdf.columns]
        if missing:
            raise ModelContractError(f"{self.path}: input lacks {len(missing)} contract feature(s): "
                                     f"{', '.join(missing[:5])}")
        return predict(self.estimator, matrix(pdf, self.features))


def save(estimator, path: str | Path, contract: dict) -> Path:
    """Write ``model.joblib`` and ``contract.json`` into directory ``path`` (created; existing
    files replaced). ``contract`` must name ``feature_service``, ``timeframe``, ``label``,
    ``features`` and ``model``; ``format`` and ``catalog_hash`` are added."""
    import joblib

    for key in ("feature_service", "timeframe", "label", "features", "model"):
        if key not in contract:
            raise ValueError(f"model contract lacks {key!r}")
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    full = {"format": FORMAT, "catalog_hash": catalog_hash()} | contract
    joblib.dump(estimator, p / MODEL)
    (p / CONTRACT).write_text(json.dumps(full, indent=1, sort_keys=True, default=str))
    return p


def read_contract(path: str | Path) -> dict:
    p = Path(path)
    f = p / CONTRACT
    if not f.is_file():
        raise ModelContractError(f"{p}: not a model directory (no {CONTRACT}; write one with `mt5lab model train --out`)")
    try:
        contract = json.loads(f.read_text())
    except ValueError as exc:
        raise ModelContractError(f"{f}: not valid JSON ({exc})") from None
    if not isinstance(contract, dict):
        raise ModelContractError(f"{f}: not a JSON object")
    if contract.get("format") != FORMAT:
        raise ModelContractError(f"{f}: format {contract.get('format')!r} is not {FORMAT!r}")
    for key in ("feature_service", "timeframe", "label", "features", "model", "catalog_hash"):
        if key not in contract:
            raise ModelContractError(f"{f}: the contract lacks {key!r}")
    if not isinstance(contract["features"], list) or not all(isinstance(x, str) for x in contract["features"]):
        raise ModelContractError(f"{f}: 'features' must be a list of feature names")
    return contract


def check_contract(contract: dict, path, profile=None, registry: bool = True) -> None:
    """Raise :class:`ModelContractError` unless the contract matches this catalog and, with
    ``registry``, the applied feature service of its timeframe on ``profile``."""
    here = catalog_hash()
    if contract.get("catalog_hash") != here:
        raise ModelContractError(f"{path}: model trained on catalog {contract.get('catalog_hash')}, this mt5lab's "
                                 f"catalog is {here}: retrain it (`mt5lab model train`)")
    if not registry:
        return
    from mt5lab.feast_repo.store import feature_store

    name, tf = contract["feature_service"], contract["timeframe"]
    try:
        svc = feature_store(profile, tf).get_feature_service(name)
    except Mt5LabError:
        raise
    except Exception:
        raise ModelContractError(f"{path}: the registry has no feature service {name!r} for {tf} "
                                 f"(run `mt5lab apply --timeframe {tf}`)") from None
    reg = (svc.tags or {}).get("catalog_hash")
    if reg != contract["catalog_hash"]:
        raise ModelContractError(f"{path}: model trained on catalog {contract['catalog_hash']}, the registry's "
                                 f"{name} ({tf}) is catalog {reg}: run `mt5lab apply` or retrain")
    served = [f.name for proj in svc.feature_view_projections for f in proj.features]
    if sorted(served) != sorted(contract["features"]):
        raise ModelContractError(f"{path}: the registry's {name} serves {len(served)} features, the model "
                                 f"needs {len(contract['features'])} others")


def load(path: str | Path, *, profile=None, registry: bool = True) -> SavedModel:
    """Load a model directory, its contract checked (see :func:`check_contract`)."""
    import joblib

    contract = read_contract(path)
    check_contract(contract, path, profile, registry)
    f = Path(path) / MODEL
    if not f.is_file():
        raise ModelContractError(f"{path}: no {MODEL}")
    return SavedModel(joblib.load(f), contract, Path(path))


def train(df, label: str, *, model: str = "lightgbm", seed: int = 0, params: dict | None = None,
          feature_service: str = "mt5_v1", timeframe: str = "D1", manifest: dict | None = None,
          out: str | Path | None = None) -> SavedModel:
    """Fit ``model`` on every labelled row of the training set ``df`` and, with ``out``, save it
    with its contract. Rows without a label are counted in ``contract["nulls"]``."""
    from importlib.metadata import version

    from mt5lab.model import estimators
    from mt5lab.model.evaluate import feature_columns, matrix, to_pandas

    pdf = to_pandas(df)
    feats = feature_columns(pdf)
    y = pd.to_numeric(pdf[label], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    est, counts = estimators.fit(model, matrix(pdf, feats), y, seed=seed, params=params)
    t = pdf["event_timestamp"][np.isfinite(y)]
    contract = {"format": FORMAT, "catalog_hash": catalog_hash(), "feature_service": feature_service,
                "timeframe": timeframe, "label": label, "features": feats, "model": model,
                "params": params or {}, "seed": seed, "train_rows": counts.rows,
                "train_start": pd.Timestamp(t.min()).isoformat() if len(t) else None,
                "train_end": pd.Timestamp(t.max()).isoformat() if len(t) else None,
                "training_set_hash": (manifest or {}).get("content_hash"), "nulls": counts.as_dict(),
                "mt5lab_version": version("mt5lab")}
    path = save(est, out, contract) if out is not None else Path(".")
    return SavedModel(est, contract, path)
