"""``mt5lab serve``: Feast's own HTTP feature server over a profile's config, built in memory.

The profile is resolved in this process (``${VAR}`` values from the environment or ``.env``), so no
secret is ever on a command line where ``ps`` shows it, nor in a file. The server binds to
``127.0.0.1`` unless a host is given explicitly: Feast's server has no authentication here
(``auth: no_auth``), so exposing it is a deliberate choice.

Endpoints are Feast's: ``POST /get-online-features`` (``{"feature_service": "mt5_v1",
"entities": {"symbol": ["EURUSD"]}}`` with ``Content-Type: application/json``), ``GET /health`` and
the rest of Feast's app. ``POST /get-online-features`` goes to mt5lab's handler
(:mod:`mt5lab.online.route`), with one rule: every request gets Feast's status code and body, except
the ttl policy (expired values null with status ``OUTSIDE_MAX_AGE``, see the route). The requests it
can prove it answers exactly are read fast (~4-5x Feast's requests/s); all others, errors included,
run through Feast's own route. ``--feast-handler`` keeps Feast's handler alone.
"""

from __future__ import annotations

import gc
import ipaddress
import logging

from mt5lab.catalog import DEFAULT_TIMEFRAME, FEATURE_SERVICE, check_timeframe
from mt5lab.config import resolve
from mt5lab.errors import StoreError
from mt5lab.feast_repo.store import feature_store

log = logging.getLogger(__name__)
DEFAULT_PORT = 6566


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _fresh_connections(fs) -> None:
    """In a forked worker: drop the SQL registry's pooled connections inherited from the master
    (two processes on one PostgreSQL socket mix up their results); each worker opens its own."""
    registry = fs.registry
    for name in ("write_engine", "read_engine"):
        engine = getattr(registry, name, None)
        if engine is not None:
            engine.dispose(close=False)


def _before_fork() -> None:
    """In the master, before each worker is forked: collect, then freeze the heap (Feast, pandas,
    the app) out of the cyclic GC (``gc.freeze``, Python's documented pattern), so a worker's full
    collection scans only what its requests allocate (a few ms, not tens landing on some request's
    p99) and never touches, hence never copies, the pages it shares with the master."""
    gc.collect()
    gc.freeze()


def _after_fork(fs) -> None:
    """A new worker: its own registry connections; what it builds before serving is frozen too
    (``gc.freeze`` only moves lists: it touches no object)."""
    _fresh_connections(fs)
    gc.freeze()


def serve(profile=None, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
          timeframe: str = DEFAULT_TIMEFRAME, workers: int = 2, registry_ttl_sec: int = 60,
          access_log: bool = False, feast_handler: bool = False, extra_routes=(), echo=print) -> None:
    """Run Feast's feature server (gunicorn + uvicorn workers) until interrupted.

    ``feast_handler=True`` keeps Feast's own ``/get-online-features`` handler (no ttl policy,
    ~7 ms CPU per request); by default mt5lab's handler (:mod:`mt5lab.online.route`) answers it.
    ``extra_routes``: callables ``add(app)`` run on Feast's app in each worker before it serves (the
    CLI adds ``POST /predict`` this way: stages above ``online`` plug in without this module
    importing them).
    """
    from feast import feature_server
    from feast.permissions.server.utils import (
        ServerType,
        init_auth_manager,
        init_security_manager,
        str_to_auth_manager_type,
    )

    from mt5lab.online import route

    prof = resolve(profile)
    tf = check_timeframe(timeframe)
    fs = feature_store(prof, tf)
    try:
        fs.get_feature_service(FEATURE_SERVICE)
    except Exception:
        raise StoreError(f"profile {prof.name!r} has no {FEATURE_SERVICE} for {tf}: run "
                         f"`mt5lab apply --timeframe {tf}` first") from None
    auth = fs.config.auth_config.type
    fast = not feast_handler and auth == "no_auth"
    where = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    echo(f"serving {FEATURE_SERVICE} ({tf}, profile {prof.name}) on {where} with {workers} worker(s) "
         f"(POST /get-online-features: {'mt5lab handler, ttl applied' if fast else 'Feast handler'}; "
         f"GET /health); Ctrl-C stops")
    if not is_loopback(host):
        echo(f"warning: listening on {host}, not loopback: the feature server has no authentication")
    # What feast.feature_server.start_server does, with the app's load() extended.
    auth_type = str_to_auth_manager_type(auth)
    init_security_manager(auth_type=auth_type, fs=fs)
    init_auth_manager(auth_type=auth_type, server_type=ServerType.REST, auth_config=fs.config.auth_config)

    class Application(feature_server.FeastServeApplication):
        def load_config(self):
            super().load_config()
            self.cfg.set("pre_fork", lambda server, worker: _before_fork())
            self.cfg.set("post_fork", lambda server, worker: _after_fork(fs))

        def load(self):
            app = super().load()
            for add in extra_routes:
                add(app)
            return route.install(app, prof, tf) if fast else app

    Application(
        store=fs, metrics_enabled=False, bind=f"{host}:{port}", accesslog="-" if access_log else None,
        workers=workers, worker_connections=1000,
        max_requests=0,  # gunicorn's worker recycling would add latency spikes under load
        max_requests_jitter=0, keepalive=30, registry_ttl_sec=registry_ttl_sec,
    ).run()
