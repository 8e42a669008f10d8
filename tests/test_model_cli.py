"""``mt5lab model evaluate | train`` and ``mt5lab predict`` as a user runs them (subprocesses, the real
GOOG sample), with MLflow runs as the DSR's trials."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MT5LAB = [sys.executable, "-m", "mt5lab.cli"]
EVAL = ["model", "evaluate", "--symbols", "GOOG", "--timeframe", "D1", "--label", "fwd_return_5", "--folds", "4",
        "--cost-bps", "2", "--json"]


def run(args, data_dir, **env):
    e = {**os.environ, "MT5LAB_DATA_DIR": str(data_dir), "TQDM_DISABLE": "1", **env}
    e.pop("MT5LAB_PROFILE", None)
    if "MLFLOW_TRACKING_URI" not in env:
        e.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([*MT5LAB, *args], capture_output=True, text=True, env=e, timeout=900, cwd=ROOT)


@pytest.mark.slow
def test_evaluate_json_and_trials_from_recorded_runs(demo_store, tmp_path, monkeypatch):
    # MLFLOW_TRACKING_URI is honoured (a file store of the user's own needs MLflow 3's opt-in)
    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    a = run([*EVAL, "--cv", "walk-forward", "--model", "linear", "--embargo", "2"], demo_store["dir"],
            MLFLOW_TRACKING_URI=uri)
    assert a.returncode == 0, a.stderr
    first = json.loads(a.stdout)
    for key in ("ic", "rank_ic", "icir", "hit_rate", "sharpe", "psr", "dsr", "n_trials", "folds", "importance_by_view"):
        assert key in first, key
    assert len(first["folds"]) == 4 and first["n_trials"] == 1
    assert set(first["importance_by_view"]) == {"ohlcv_features", "technical_indicators_ma",
                                                "technical_indicators_momentum", "technical_indicators_volatility",
                                                "volume_indicators", "price_action"}
    assert first["nulls"]["label_null_rows"] == 5 and first["rows"] == 2148  # GOOG.csv's rows, none dropped
    b = run([*EVAL, "--cv", "cpcv", "--folds", "4", "--model", "lightgbm", "--repeats", "1"], demo_store["dir"],
            MLFLOW_TRACKING_URI=uri)
    assert b.returncode == 0, b.stderr
    second = json.loads(b.stdout)
    assert second["n_trials"] == 2  # the experiment's recorded runs, this one included
    s1, s2 = first["sharpe"], second["sharpe"]
    assert second["sharpe_variance"] == pytest.approx((s1 - s2) ** 2 / 2, rel=1e-9)  # ddof 1 of two values
    assert len(second["paths"]) == 3  # CPCV N=4, k=2: 6 splits, 3 paths
    assert second["tracking"]["experiment"] == "mt5lab/D1/fwd_return_5/GOOG"
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("mt5lab/D1/fwd_return_5/GOOG").experiment_id])
    assert len(runs) == 2
    from mt5lab.catalog import catalog_hash

    assert {r.data.tags["mt5lab.catalog_hash"] for r in runs} == {catalog_hash()}
    assert all(r.data.tags["mt5lab.training_set_hash"].startswith("sha256:") for r in runs)
    assert {r.data.params["model"] for r in runs} == {"linear", "lightgbm"}
    figures = {Path(a.path).name for a in client.list_artifacts(runs[0].info.run_id, "figures")}
    assert figures == {"folds.png", "ic.png", "equity.png", "importance.png"}


@pytest.mark.slow
def test_train_then_predict(demo_store, tmp_path, monkeypatch):
    out = tmp_path / "goog_model"
    t = run(["model", "train", "--symbols", "GOOG", "--label", "fwd_return_5", "--model", "linear", "--out", str(out),
             "--track"], demo_store["dir"])
    assert t.returncode == 0, t.stderr
    assert "2143 rows" in t.stdout and "5 rows without a label left out" in t.stdout
    # without MLFLOW_TRACKING_URI the run is in the data dir's file store, the model directory its artifact
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=(Path(demo_store["dir"]) / "mlruns").resolve().as_uri())
    exp = client.get_experiment_by_name("mt5lab/D1/fwd_return_5/GOOG")
    [model_run] = client.search_runs([exp.experiment_id], filter_string="tags.`mt5lab.kind` = 'model'")
    assert {Path(a.path).name for a in client.list_artifacts(model_run.info.run_id, "model")} == {
        "contract.json", "model.joblib"}
    assert "sharpe" not in model_run.data.metrics  # a saved model is not a trial
    p = run(["predict", "GOOG", "--model", str(out), "--now", "2013-03-02T01:00:00+00:00", "--json"], demo_store["dir"])
    assert p.returncode == 0, p.stderr
    rec = json.loads(p.stdout)
    assert rec["status"] == "ok" and rec["decision_time"] == "2013-03-02T00:00:00+00:00"
    late = run(["predict", "GOOG", "--model", str(out)], demo_store["dir"])  # 2013's bar, read today
    assert late.returncode == 1 and "no prediction (expired:" in late.stdout


def test_bad_inputs_are_one_line_errors(tmp_path):
    r = run([*EVAL[:6], "--label", "fwd_foo_5", "--no-track"], tmp_path / "data")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "unknown label 'fwd_foo_5'" in r.stderr
    r = run(["predict", "GOOG", "--model", str(tmp_path / "none")], tmp_path / "data")
    assert r.returncode == 3 and r.stderr.startswith("error: ") and "not a model directory" in r.stderr
    assert r.stderr.count("\n") == 1
