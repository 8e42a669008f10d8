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


def reset_caches() -> None:
    """Forget cached FeatureStores and online readers (a new data dir or profile is coming)."""
    from mt5lab.feast_repo import store
    from mt5lab.online import reader as online_reader

    store._STORES.clear()
    online_reader.clear_cache()


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    d = tmp_path / "data"
    monkeypatch.setenv("MT5LAB_DATA_DIR", str(d))
    monkeypatch.delenv("MT5LAB_PROFILE", raising=False)
    reset_caches()
    yield d
    reset_caches()


def _fresh_profile(name: str, tmp_path, monkeypatch):
    """The profile fixtures' body: a fresh, empty store of profile ``name`` (postgres: a new database
    and a throwaway Redis), caches reset around it."""
    monkeypatch.setenv("MT5LAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("MT5LAB_PROFILE", raising=False)
    reset_caches()
    if name == "local":
        yield "local"
    else:
        from mt5lab.testing.sandbox import postgres_profile_env

        require_service("PostgreSQL", "127.0.0.1", 5432)
        with postgres_profile_env():
            yield "postgres"
    reset_caches()


@pytest.fixture(params=["local", pytest.param("postgres", marks=pytest.mark.services)])
def profile(request, tmp_path, monkeypatch):
    """A fresh, empty store of each profile (postgres: a new database and a throwaway Redis)."""
    yield from _fresh_profile(request.param, tmp_path, monkeypatch)


@pytest.fixture
def postgres_profile(tmp_path, monkeypatch):
    """A fresh, empty store of the team profile only (Redis online store); mark the test ``services``."""
    yield from _fresh_profile("postgres", tmp_path, monkeypatch)


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory):
    """A local store with both real samples ingested, built, applied and materialized (once)."""
    d = tmp_path_factory.mktemp("demo") / "data"
    mp = pytest.MonkeyPatch()
    mp.setenv("MT5LAB_DATA_DIR", str(d))
    mp.delenv("MT5LAB_PROFILE", raising=False)
    reset_caches()
    from mt5lab.demo import run_demo

    result = run_demo(None, progress=False, echo=lambda *_: None)
    yield {"dir": d, "result": result}
    reset_caches()
    mp.undo()
