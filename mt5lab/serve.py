"""``mt5lab serve``: Feast's own HTTP feature server over a profile's config, built in memory.

The profile is resolved in this process (``${VAR}`` values from the environment or ``.env``), so no
secret is ever on a command line where ``ps`` shows it, nor in a file. The server binds to
``127.0.0.1`` unless a host is given explicitly: Feast's server has no authentication here
(``auth: no_auth``), so exposing it is a deliberate choice.

Endpoints are Feast's: ``POST /get-online-features`` (``{"feature_service": "mt5_v1",
"entities": {"symbol": ["EURUSD"]}}``) and ``GET /health``. Note that Feast's server, like Feast's
``get_online_features``, ignores a view's ttl: a client that needs the expiry policy should read
the returned ``event_timestamps`` (or use :func:`mt5lab.online_features` in process).
"""

from __future__ import annotations

import ipaddress
import logging

from mt5lab.catalog import DEFAULT_TIMEFRAME, FEATURE_SERVICE, check_timeframe
from mt5lab.errors import StoreError
from mt5lab.store import feature_store, resolve

log = logging.getLogger(__name__)
DEFAULT_PORT = 6566


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(profile=None, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
          timeframe: str = DEFAULT_TIMEFRAME, workers: int = 1, registry_ttl_sec: int = 60,
          access_log: bool = False, echo=print) -> None:
    """Run Feast's feature server (gunicorn + uvicorn workers) until interrupted."""
    from feast import feature_server

    prof = resolve(profile)
    tf = check_timeframe(timeframe)
    fs = feature_store(prof, tf)
    try:
        fs.get_feature_service(FEATURE_SERVICE)
    except Exception:
        raise StoreError(f"profile {prof.name!r} has no {FEATURE_SERVICE} for {tf}: run "
                         f"`mt5lab apply --timeframe {tf}` first") from None
    where = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    echo(f"serving {FEATURE_SERVICE} ({tf}, profile {prof.name}) on {where} "
         f"(POST /get-online-features, GET /health); Ctrl-C stops")
    if not is_loopback(host):
        echo(f"warning: listening on {host}, not loopback: the feature server has no authentication")
    feature_server.start_server(
        fs, host=host, port=port, no_access_log=not access_log, workers=workers,
        worker_connections=1000,
        max_requests=0,  # gunicorn's worker recycling would add latency spikes under load
        max_requests_jitter=0, keep_alive_timeout=30, registry_ttl_sec=registry_ttl_sec,
        tls_key_path="", tls_cert_path="", metrics=False,
    )
