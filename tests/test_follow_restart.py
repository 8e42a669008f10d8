"""The live feed survives its servers: PostgreSQL and Redis crashed and restarted under a running
``mt5lab follow`` (postgres profile). The servers are throwaway ones on free loopback ports
(:mod:`mt5lab.testing.restartable`), never the machine's 5432/6379, each crashed by its own PID at a
random moment of a replay (so usually in the middle of an update) and kept down for at least one
whole bar close. The follower must log each fault, keep going, recover by itself once the server is
back, and leave stores equal to a batch ingest + build + materialize of the same file.
"""

from __future__ import annotations

import os
import secrets
import threading

import numpy as np
import pytest

from mt5lab.bars.sources import ReplaySource
from tests.conftest import reset_caches
from tests.test_follow import N, _bars, assert_equals_batch, batch_reference

pytestmark = pytest.mark.slow


class GatedReplay(ReplaySource):
    """A real replay that runs ``hooks[i]`` before releasing its bar close ``i + 1`` (after cycle ``i``)."""

    def __init__(self, path, hooks: dict, **kw):
        super().__init__(path, **kw)
        self.hooks, self.released = hooks, 0

    def wait(self, until, stop=None) -> bool:
        self.released += 1
        if self.released in self.hooks:
            self.hooks[self.released]()
        return super().wait(until, stop)


@pytest.fixture
def servers(tmp_path, monkeypatch):
    """A private PostgreSQL cluster and Redis server, the postgres profile pointed at them."""
    from mt5lab.testing.restartable import PostgresServer, RedisServer, missing_binaries

    missing = missing_binaries()
    if missing:
        msg = f"needs {', '.join(missing)}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg + " (CI=true: services are required)")
        pytest.skip(msg)
    with PostgresServer() as pg, RedisServer(password=secrets.token_urlsafe(16)) as redis:
        pg.start()
        redis.start()
        monkeypatch.setenv("MT5LAB_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("MT5LAB_PROFILE", "postgres")
        for k, v in {**pg.env(), **redis.env()}.items():
            monkeypatch.setenv(k, v)
        reset_caches()
        yield pg, redis
        reset_caches()


class _Later:
    """Run ``fn`` on another thread after a random delay (so it lands inside the next update, or
    between two)."""

    def __init__(self, fn, rng: np.random.Generator):
        self.thread = threading.Timer(float(rng.uniform(0.0, 0.05)), fn)
        self.thread.start()

    def join(self) -> None:
        self.thread.join(120)
        assert not self.thread.is_alive()


def test_postgres_and_redis_restarted_under_the_follower(servers, tmp_path, caplog):
    import mt5lab
    from mt5lab.feast_repo.store import apply

    pg, redis = servers
    path = tmp_path / "two.parquet"
    _bars().write_parquet(path)
    batch = batch_reference(path, tmp_path / "batch")
    reset_caches()
    apply(None, "H1")

    rng = np.random.default_rng(1515)
    pending: dict[str, _Later] = {}
    hooks = {  # hook i runs between the follower's cycles i and i + 1
        12: lambda: pending.__setitem__("pg", _Later(pg.crash, rng)),  # crashes in or after cycle 13,
        13: lambda: pending["pg"].join(),  # is down for all of cycle 14,
        14: pg.start,  # and back (crash recovery) for cycle 15
        30: lambda: pending.__setitem__("redis", _Later(redis.crash, rng)),
        31: lambda: pending["redis"].join(),
        32: redis.start,
    }
    src = GatedReplay(path, hooks, timeframe="H1")
    with caplog.at_level("WARNING", logger="mt5lab.follow"):
        res = mt5lab.follow(source=src, timeframe="H1", handle_signals=False)
    assert src.released > 32  # every hook ran
    faults = [r.getMessage() for r in caplog.records if r.name == "mt5lab.follow"]
    assert any("update failed (StoreError: PostgreSQL at 127.0.0.1" in m for m in faults), faults
    assert any("update failed (ConnectionError" in m for m in faults), faults
    recovered = [m for m in faults if "recovered after" in m]
    assert {m.split(":")[0] for m in recovered} == {"EURUSD", "GBPUSD"} and len(recovered) >= 4, faults
    assert res.stopped == "end of replay" and not res.failing and res.bars == 2 * N
    reset_caches()
    assert_equals_batch(batch)
