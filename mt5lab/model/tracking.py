"""Experiments are recorded, not remembered: every evaluation is an MLflow run.

Where: ``MLFLOW_TRACKING_URI`` when set (a team server, or any store MLflow accepts), else MLflow's
file store under the data directory, ``<MT5LAB_DATA_DIR>/mlruns`` (MLflow 3 keeps that store in
maintenance mode and asks for ``MLFLOW_ALLOW_FILE_STORE=true``, which mt5lab sets for its own
default store only, in this process).

What a run holds: parameters (model, label, CV scheme, folds, embargo, costs, seed, symbols,
timeframe), tags (feature service, catalog hash, the training set's manifest content hash, mt5lab
version), metrics overall and per fold (``fold_ic``, ``fold_rank_ic``, ``fold_sharpe`` with the fold
as the step), the evaluation as JSON, any figures (PNG) and, when given, the model directory.

The DSR's trials: an experiment is one research question (by default ``mt5lab/<timeframe>/<label>/
<symbols>``); every finished run in it with a ``sharpe`` metric is a trial. :func:`record` counts
them, this run included, and takes the variance (ddof 1) of their per-period Sharpe ratios: that
is ``n_trials`` and ``sharpe_variance`` for :func:`mt5lab.model.deflated_sharpe_ratio`.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np

from mt5lab.config import data_dir

ENV_URI = "MLFLOW_TRACKING_URI"


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else ``file:<data dir>/mlruns``."""
    uri = os.environ.get(ENV_URI, "").strip()
    if uri:
        return uri
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # our own default store (see module docstring)
    path = (data_dir() / "mlruns").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path.as_uri()


def experiment_name(timeframe: str, label: str, symbols) -> str:
    syms = ",".join(sorted(symbols)) if not isinstance(symbols, str) else symbols
    return f"mt5lab/{timeframe}/{label}/{syms}"


def _client():
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri())


def _experiment_id(client, name: str) -> str:
    exp = client.get_experiment_by_name(name)
    return exp.experiment_id if exp is not None else client.create_experiment(name)


def recorded_sharpes(name: str) -> list[float]:
    """Per-period Sharpe ratios of the finished runs of experiment ``name`` (empty if none)."""
    client = _client()
    exp = client.get_experiment_by_name(name)
    if exp is None:
        return []
    runs = client.search_runs([exp.experiment_id], filter_string="attributes.status = 'FINISHED'",
                              max_results=50_000)
    return [r.data.metrics["sharpe"] for r in runs if "sharpe" in r.data.metrics]


def trials(sharpes: list[float]) -> tuple[int, float]:
    """``(n_trials, sharpe_variance)`` from trial Sharpe ratios (finite ones; variance ddof 1, 0 below 2)."""
    v = np.asarray([s for s in sharpes if s is not None and math.isfinite(s)], dtype=float)
    return max(int(v.size), 1), float(v.var(ddof=1)) if v.size > 1 else 0.0


def record(ev, *, timeframe: str, symbols, feature_service: str = "mt5_v1", manifest: dict | None = None,
           experiment: str | None = None, figures: dict | None = None, model_dir: str | Path | None = None) -> dict:
    """Log ``ev`` (an :class:`mt5lab.model.evaluate.Evaluation`) as a run, then deflate its Sharpe
    by the experiment's trials. Returns ``{"run_id", "experiment", "tracking_uri", "n_trials",
    "sharpe_variance", "dsr"}`` and sets them in ``ev.metrics``."""
    from importlib.metadata import version

    from mt5lab.catalog import catalog_hash

    name = experiment or experiment_name(timeframe, ev.config["label"], symbols)
    client = _client()
    exp_id = _experiment_id(client, name)
    run = client.create_run(exp_id, tags={"mt5lab.feature_service": feature_service,
                                          "mt5lab.catalog_hash": catalog_hash(),
                                          "mt5lab.training_set_hash": (manifest or {}).get("content_hash", ""),
                                          "mt5lab.version": version("mt5lab")})
    rid = run.info.run_id
    try:
        params = {k: v for k, v in ev.config.items() if k != "params"} | {
            "timeframe": timeframe, "symbols": ",".join(symbols) if not isinstance(symbols, str) else symbols,
            "features": len(ev.features), "model_params": json.dumps(ev.config.get("params") or {}, sort_keys=True)}
        for k, v in params.items():
            client.log_param(rid, k, v)
        for key in ("sharpe", "psr", "ic", "rank_ic", "icir", "hit_rate", "max_drawdown", "turnover", "periods"):
            v = ev.metrics.get(key)
            if v is not None and math.isfinite(v):
                client.log_metric(rid, key, float(v))
        for f in ev.folds:
            for key in ("ic", "rank_ic", "sharpe"):
                v = f.get(key)
                if v is not None and math.isfinite(v):
                    client.log_metric(rid, f"fold_{key}", float(v), step=int(f["fold"]))
        client.set_terminated(rid, "FINISHED")  # this run is now one of the trials
        n, var = trials(recorded_sharpes(name))
        ev.deflate(n, var)
        for key in ("dsr", "n_trials", "sharpe_variance"):
            v = ev.metrics[key]
            if v is not None and math.isfinite(v):
                client.log_metric(rid, key, float(v))
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "evaluation.json").write_text(json.dumps(ev.summary(), indent=1, default=str))
            client.log_artifact(rid, str(Path(tmp) / "evaluation.json"))
            for fname, fig in (figures or {}).items():
                png = Path(tmp) / f"{fname}.png"
                fig.savefig(png, dpi=90, bbox_inches="tight")
                client.log_artifact(rid, str(png), "figures")
        if model_dir is not None:
            client.log_artifacts(rid, str(model_dir), "model")
    except BaseException:
        client.set_terminated(rid, "FAILED")
        raise
    info = {"run_id": rid, "experiment": name, "tracking_uri": tracking_uri(), "n_trials": ev.metrics["n_trials"],
            "sharpe_variance": ev.metrics["sharpe_variance"], "dsr": ev.metrics["dsr"]}
    ev.metrics["run_id"] = rid
    ev.metrics["experiment"] = name
    return info


def record_model(saved, *, symbols, experiment: str | None = None) -> dict:
    """Log a saved model (:class:`mt5lab.model.artifact.SavedModel`) as a run of its experiment:
    the contract as parameters and tags, the model directory as the ``model`` artifact. It has no
    ``sharpe`` metric, so it is not a trial for the DSR. Returns ``{"run_id", "experiment", "tracking_uri"}``."""
    c = saved.contract
    name = experiment or experiment_name(c["timeframe"], c["label"], symbols)
    client = _client()
    run = client.create_run(_experiment_id(client, name), tags={
        "mt5lab.kind": "model", "mt5lab.feature_service": c["feature_service"], "mt5lab.catalog_hash": c["catalog_hash"],
        "mt5lab.training_set_hash": c.get("training_set_hash") or "", "mt5lab.version": c.get("mt5lab_version") or ""})
    rid = run.info.run_id
    for k in ("model", "label", "timeframe", "seed", "train_rows", "train_start", "train_end"):
        client.log_param(rid, k, c.get(k))
    client.log_artifacts(rid, str(saved.path), "model")
    client.set_terminated(rid, "FINISHED")
    return {"run_id": rid, "experiment": name, "tracking_uri": tracking_uri()}
