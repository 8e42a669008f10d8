"""Shared fixtures. Every test that writes gets its own MT5LAB_DATA_DIR."""

from __future__ import annotations

import os
import socket

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TQDM_DISABLE", "1")


def service_up(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Under CI=true a missing service is a failure, never a skip."""
    if service_up(host, port):
        return
    msg = f"{name} is not reachable on {host}:{port}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(msg + " (CI=true: services are required)")
    pytest.skip(msg)


def _reset_caches() -> None:
    from mt5lab.feast_repo import store

    store._STORES.clear()


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    d = tmp_path / "data"
    monkeypatch.setenv("MT5LAB_DATA_DIR", str(d))
    monkeypatch.delenv("MT5LAB_PROFILE", raising=False)
    _reset_caches()
    yield d
    _reset_caches()


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory):
    """A local store with both real samples ingested, built, applied and materialized (once)."""
    d = tmp_path_factory.mktemp("demo") / "data"
    mp = pytest.MonkeyPatch()
    mp.setenv("MT5LAB_DATA_DIR", str(d))
    mp.delenv("MT5LAB_PROFILE", raising=False)
    _reset_caches()
    from mt5lab.demo import run_demo

    result = run_demo(None, progress=False, echo=lambda *_: None)
    yield {"dir": d, "result": result}
    _reset_caches()
    mp.undo()
