"""From model to live signal: the contract, ttl-aware online predictions, POST /predict, and the
training-serving skew test (online prediction == offline prediction for the latest closed bar, same
decision time) on both profiles."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from mt5lab.model import artifact
from mt5lab.model.predict import predict_offline, predict_online


def _store_with_goog(profile, bars: int = 900):
    from mt5lab.bars.ingest import write
    from mt5lab.bars.samples import load_sample
    from mt5lab.feast_repo.store import apply
    from mt5lab.features.build import build
    from mt5lab.online.materialize import materialize
    from mt5lab.storage import open_store

    st = open_store(profile)
    goog = load_sample("GOOG").head(bars)
    write(st, goog, [])
    build(st, progress=False)
    apply(profile, "D1")
    materialize(st, profile, "D1", progress=False)
    return st, goog


def _train(st, profile, out, model="lightgbm"):
    from mt5lab.training.assemble import decision_times, training_set

    keys = decision_times(["GOOG"], datetime(2004, 1, 1, tzinfo=UTC), datetime(2014, 1, 1, tzinfo=UTC), "D1", store=st)
    ts = training_set(keys, "mt5_v1", timeframe="D1", labels=["fwd_return_5"], store=st, progress=False)
    return artifact.train(ts, "fwd_return_5", model=model, out=out, params={"n_estimators": 50} if model == "lightgbm" else None)


@pytest.mark.slow
def test_online_prediction_equals_offline_for_the_latest_closed_bar(profile, tmp_path):
    st, goog = _store_with_goog(profile)
    last_close = goog["time"].max() + timedelta(days=1)  # the last sample bar closes a day after it opens
    for model in ("lightgbm", "linear"):
        saved = _train(st, profile, tmp_path / model, model)
        now = last_close + timedelta(hours=3)
        [p] = predict_online(str(tmp_path / model), ["GOOG"], profile=profile, now=now)
        assert p.status == "ok", p.reason
        assert p.decision_time == last_close
        [offline] = predict_offline(saved, ["GOOG"], [p.decision_time], profile=profile)
        assert p.prediction == offline, (model, p.prediction, offline)  # same features, same model: equal
        # a decision one bar earlier sees another bar: a different prediction (the test can fail)
        [earlier] = predict_offline(saved, ["GOOG"], [p.decision_time - timedelta(days=1)], profile=profile)
        assert earlier != offline


@pytest.mark.slow
def test_no_prediction_from_expired_or_missing_views(profile, tmp_path):
    st, goog = _store_with_goog(profile, 700)
    _train(st, profile, tmp_path / "m", "linear")
    last_close = goog["time"].max() + timedelta(days=1)
    late, missing = predict_online(str(tmp_path / "m"), ["GOOG", "XAUUSD"], profile=profile,
                                   now=last_close + timedelta(days=30))
    assert (late.status, late.prediction, late.decision_time) == ("expired", None, None)
    assert "is expired (bar closed 2007-" in late.reason and set(late.views.values()) == {"expired"}
    assert (missing.status, missing.prediction) == ("missing", None) and "is missing" in missing.reason
    [early] = predict_online(str(tmp_path / "m"), ["GOOG"], profile=profile, now=last_close - timedelta(hours=1))
    assert early.status == "future"  # the stored bar closes after that now: using it would be look-ahead


def test_contract_mismatch_is_refused_with_one_line(data_dir, tmp_path):
    import numpy as np

    from mt5lab.catalog import FEATURE_NAMES

    df = pd.DataFrame(np.random.default_rng(0).normal(size=(50, len(FEATURE_NAMES))), columns=list(FEATURE_NAMES))
    df["symbol"] = "X"
    df["event_timestamp"] = pd.date_range("2020-01-01", periods=50, freq="D", tz="UTC")
    df["fwd_return_5"] = np.random.default_rng(1).normal(size=50)
    saved = artifact.train(df, "fwd_return_5", model="linear", out=tmp_path / "m")
    assert saved.contract["features"] == list(FEATURE_NAMES) and saved.contract["train_rows"] == 50
    with pytest.raises(artifact.ModelContractError, match="registry has no feature service 'mt5_v1' for D1"):
        artifact.load(tmp_path / "m")  # nothing applied in this data dir
    contract = json.loads((tmp_path / "m" / "contract.json").read_text())
    contract["catalog_hash"] = "0123456789abcdef"
    (tmp_path / "m" / "contract.json").write_text(json.dumps(contract))
    with pytest.raises(artifact.ModelContractError) as err:
        artifact.load(tmp_path / "m", registry=False)
    assert "model trained on catalog 0123456789abcdef" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(artifact.ModelContractError, match="not a model directory"):
        artifact.load(tmp_path / "nothing")


def test_a_hand_edited_contract_is_refused_with_one_line(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    for body, rule in (('{"format": "mt5lab.model/1", "catalog_hash": "x"}', "lacks 'feature_service'"),
                       ('["mt5lab.model/1"]', "not a JSON object")):
        (d / "contract.json").write_text(body)
        with pytest.raises(artifact.ModelContractError, match=rule) as err:
            artifact.load(d, registry=False)
        assert "\n" not in str(err.value)


@pytest.mark.slow
def test_post_predict_route(data_dir, tmp_path):
    """The handler installed on Feast's own feature-server app (what ``mt5lab serve`` runs), next
    to Feast's routes."""
    from fastapi.testclient import TestClient
    from feast.feature_server import get_app

    from mt5lab.feast_repo.store import feature_store
    from mt5lab.model import http

    st, goog = _store_with_goog("local", 700)
    saved = _train(st, "local", tmp_path / "m", "linear")
    app = get_app(feature_store(None, "D1"), 0)
    http.install(app, str(tmp_path / "m"))
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200  # Feast's routes untouched
        last_close = goog["time"].max() + timedelta(days=1)
        now = (last_close + timedelta(hours=1)).isoformat()
        r = client.post("/predict", json={"symbols": ["GOOG", "XAUUSD"], "now": now})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model"]["label"] == "fwd_return_5" and body["model"]["feature_service"] == "mt5_v1"
        ok, missing = body["predictions"]
        assert ok["status"] == "ok" and ok["decision_time"] == last_close.isoformat()
        [offline] = predict_offline(saved, ["GOOG"], [last_close], profile="local")
        assert ok["prediction"] == offline
        assert missing["status"] == "missing" and missing["prediction"] is None
        for bad in ({"symbols": []}, {"symbols": "GOOG"}, {"symbols": ["GOOG"], "now": "2020-01-01T00:00"}, [1]):
            r = client.post("/predict", json=bad)
            assert r.status_code == 422 and "\n" not in r.json()["detail"], bad
        assert client.post("/predict", content=b"{}", headers={"content-type": "text/plain"}).status_code == 422


@pytest.mark.slow
def test_mt5lab_serve_with_a_model_answers_predict_and_features(data_dir, tmp_path):
    """``mt5lab serve --model DIR``: the real server process (gunicorn workers, mt5lab's fast path in
    front of Feast's app) answers POST /predict with the offline prediction, and still answers
    /get-online-features."""
    import urllib.request

    from mt5lab.testing.sandbox import serve_process

    st, goog = _store_with_goog("local", 700)
    saved = _train(st, "local", tmp_path / "m", "linear")
    last_close = goog["time"].max() + timedelta(days=1)

    def post(port, path, payload):
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())

    with serve_process("--workers", "1", "--model", str(tmp_path / "m")) as (port, _):
        status, body = post(port, "/predict", {"symbols": ["GOOG"],
                                               "now": (last_close + timedelta(hours=1)).isoformat()})
        assert status == 200
        [p] = body["predictions"]
        [offline] = predict_offline(saved, ["GOOG"], [last_close], profile="local")
        assert p["status"] == "ok" and p["prediction"] == offline
        status, body = post(port, "/get-online-features", {"feature_service": "mt5_v1",
                                                            "entities": {"symbol": ["GOOG"]}})
        assert status == 200 and len(body["metadata"]["feature_names"]) == 43
