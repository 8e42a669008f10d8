"""``mt5lab serve``: Feast's feature server over real HTTP, on loopback, with no secret in argv."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import pandas as pd
import psutil
import pytest

from mt5lab.catalog import FEATURE_NAMES
from mt5lab.testing.sandbox import serve_process

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


def _processes(proc) -> list:
    root = psutil.Process(proc.pid)
    return [root, *root.children(recursive=True)]


@pytest.fixture(scope="module")
def fresh_store(tmp_path_factory):
    """GOOG's real bars moved to end yesterday (fresh), the original GOOG bars as OLD (expired)."""
    import polars as pl

    from mt5lab.bars.samples import load_sample
    from mt5lab.feast_repo import store
    from mt5lab.feast_repo.store import apply
    from mt5lab.online import reader as online_reader
    from mt5lab.online.update import update

    mp = pytest.MonkeyPatch()
    mp.setenv("MT5LAB_DATA_DIR", str(tmp_path_factory.mktemp("serve") / "data"))
    mp.delenv("MT5LAB_PROFILE", raising=False)
    store._STORES.clear()
    apply(None, "D1")
    goog = load_sample("GOOG")
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    shift = today - timedelta(days=1) - goog["time"][-1]
    update(goog.with_columns(pl.col("time") + shift), calendar="equity")
    update(goog.head(300).with_columns(pl.lit("OLD").alias("symbol")), calendar="equity")
    yield
    store._STORES.clear()
    online_reader.clear_cache()
    mp.undo()


def _feast_handler(body: dict) -> dict:
    """The same request answered by Feast's own, unmodified app, in process."""
    from fastapi.testclient import TestClient
    from feast.feature_server import get_app

    from mt5lab.feast_repo.store import feature_store

    with TestClient(get_app(feature_store(None, "D1"), 0)) as client:
        r = client.post("/get-online-features", json=body)
        assert r.status_code == 200, r.text
        return r.json()


def _post(port: int, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/get-online-features",
                                 data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _columns(resp: dict) -> dict:
    return dict(zip(resp["metadata"]["feature_names"], resp["results"], strict=True))


@pytest.mark.slow
def test_serve_over_http_matches_feast_and_applies_ttl(fresh_store):
    from mt5lab import online_features

    body = {"feature_service": "mt5_v1", "entities": {"symbol": ["GOOG", "OLD", "NOPE"]}}
    refs = {"features": ["price_action:cdl_doji", "ohlcv_features:close"], "full_feature_names": True,
            "entities": {"symbol": ["GOOG"]}}
    with serve_process(timeout=120) as (port, proc):
        status, got = _post(port, body)
        _, got_refs = _post(port, refs)
        bad_status, _ = _post(port, {"feature_service": "mt5_v1"})  # no entities: Feast's 422
        listening = {c.laddr.ip for p in _processes(proc) for c in p.net_connections("tcp")
                     if c.status == psutil.CONN_LISTEN}
    assert status == 200 and bad_status == 422
    assert listening == {"127.0.0.1"}
    ours, feast = _columns(got), _columns(_feast_handler(body))
    assert set(ours) == set(feast) == {"symbol", *FEATURE_NAMES}
    want = online_features(["GOOG"])
    for name in FEATURE_NAMES:
        o, f = ours[name], feast[name]
        assert o["values"][0] == f["values"][0] == (None if pd.isna(want[name][0]) else want[name][0]), name
        assert o["statuses"] == ["PRESENT", "OUTSIDE_MAX_AGE", "NOT_FOUND"], name
        assert o["event_timestamps"][:2] == f["event_timestamps"][:2], name
        # feast-dev/feast#6821: Feast serves the expired OLD value as PRESENT; mt5lab nulls it.
        assert o["values"][1] is None and f["statuses"][1] == "PRESENT", name
        assert o["values"][2] is None and f["statuses"][2] == "NOT_FOUND", name
    assert _feast_handler(refs) == got_refs


@pytest.mark.slow
@pytest.mark.services
def test_serve_postgres_profile_keeps_secrets_out_of_argv(tmp_path, monkeypatch):
    import polars as pl

    from mt5lab.bars.samples import load_sample
    from mt5lab.feast_repo import store as store_mod
    from mt5lab.feast_repo.store import apply
    from mt5lab.online.update import update
    from mt5lab.testing.sandbox import postgres_profile_env
    from tests.conftest import require_service

    require_service("PostgreSQL", "127.0.0.1", 5432)
    monkeypatch.setenv("MT5LAB_DATA_DIR", str(tmp_path / "data"))
    store_mod._STORES.clear()
    with postgres_profile_env() as env:
        apply(None, "D1")
        goog = load_sample("GOOG").head(260)
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        update(goog.with_columns(pl.col("time") + (today - timedelta(days=1) - goog["time"][-1])),
               calendar="equity")
        with serve_process(timeout=120) as (port, proc):
            status, got = _post(port, {"feature_service": "mt5_v1", "entities": {"symbol": ["GOOG", "NOPE"]}})
            argv = [" ".join(p.cmdline()) for p in _processes(proc)]
        store_mod._STORES.clear()
    assert len(argv) >= 2  # gunicorn master and a worker
    assert all(env["MT5LAB_REDIS_PASSWORD"] not in a for a in argv)
    assert all("password" not in a.lower() for a in argv)
    cols = _columns(got)
    assert status == 200 and set(cols) == {"symbol", *FEATURE_NAMES}
    assert cols["sma_200"]["values"][1] is None and cols["sma_200"]["statuses"][1] == "NOT_FOUND"
    assert cols["close"]["values"][0] == goog["close"][-1] and cols["close"]["statuses"][0] == "PRESENT"
    assert cols["sma_200"]["values"][0] == pytest.approx(goog["close"].tail(200).mean(), rel=1e-12)
