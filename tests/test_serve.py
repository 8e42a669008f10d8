"""``mt5lab serve``: Feast's feature server over real HTTP, on loopback, with no secret in argv."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager

import pandas as pd
import psutil
import pytest

from mt5lab.catalog import FEATURE_NAMES
from mt5lab.sandbox import free_port


@contextmanager
def server(*args: str, timeout: float = 120.0):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mt5lab.cli", "serve", "--port", str(port), *args],
                            env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None:
                raise AssertionError(f"server exited: {proc.stdout.read().decode()[-2000:]}")
            assert time.monotonic() < deadline, "server did not become healthy"
            time.sleep(0.25)
        yield port, proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _get_online(port: int, symbols: list[str]) -> dict:
    body = json.dumps({"feature_service": "mt5_v1", "entities": {"symbol": symbols}}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/get-online-features", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200
        return json.loads(r.read())


def _by_name(resp: dict) -> dict:
    names = resp["metadata"]["feature_names"]
    return {n: res["values"] for n, res in zip(names, resp["results"], strict=True)}


def _processes(proc) -> list:
    root = psutil.Process(proc.pid)
    return [root, *root.children(recursive=True)]


@pytest.mark.slow
def test_serve_answers_all_features_on_loopback(demo_store):
    from mt5lab import online_features

    want = online_features(["GOOG"], keep_expired=True)
    with server() as (port, proc):
        got = _by_name(_get_online(port, ["GOOG"]))
        listening = {c.laddr.ip for p in _processes(proc) for c in p.net_connections("tcp")
                     if c.status == psutil.CONN_LISTEN}
    assert set(FEATURE_NAMES) <= set(got) and got["symbol"] == ["GOOG"]
    for name in FEATURE_NAMES:
        w = want[name][0]
        assert got[name] == [None if pd.isna(w) else w], name
    assert listening == {"127.0.0.1"}


@pytest.mark.slow
@pytest.mark.services
def test_serve_postgres_profile_keeps_secrets_out_of_argv(tmp_path, monkeypatch):
    from tests.conftest import require_service

    from mt5lab import store as store_mod
    from mt5lab.samples import load_sample
    from mt5lab.sandbox import postgres_profile_env
    from mt5lab.store import apply
    from mt5lab.update import update

    require_service("PostgreSQL", "127.0.0.1", 5432)
    monkeypatch.setenv("MT5LAB_DATA_DIR", str(tmp_path / "data"))
    store_mod._STORES.clear()
    with postgres_profile_env() as env:
        apply(None, "D1")
        update(load_sample("GOOG").head(260), calendar="equity")
        with server() as (port, proc):
            got = _by_name(_get_online(port, ["GOOG", "NOPE"]))
            argv = [" ".join(p.cmdline()) for p in _processes(proc)]
        store_mod._STORES.clear()
    assert len(argv) >= 2  # gunicorn master and a worker
    assert all(env["MT5LAB_REDIS_PASSWORD"] not in a for a in argv)
    assert all("password" not in a.lower() for a in argv)
    assert set(FEATURE_NAMES) <= set(got)
    assert got["sma_200"][0] is not None and got["sma_200"][1] is None
