"""Turn a driver's connection or authentication error into one clear line naming server and user.

Feast's Redis and SQL-registry code raises redis-py and SQLAlchemy errors from deep inside its
calls; :class:`mt5lab.storage.postgres.PostgresStore` translates its own. The CLI passes anything
else through :func:`translate`, which walks the exception chain, recognises these drivers' errors
and rebuilds the message from the profile's *non-secret* settings (host, port, user, database):
never from a DSN, a connection string or the original message's arguments.
"""

from __future__ import annotations

from mt5lab.errors import StoreError
from mt5lab.redact import redact


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[0] if lines else type(exc).__name__
    if text.startswith("(") and ") " in text:  # SQLAlchemy's "(psycopg.OperationalError) ..."
        text = text.split(") ", 1)[1]
    if "failed:" in text and "connection" in text:
        text = text.rsplit("failed:", 1)[1]
    return redact(" ".join(text.replace("FATAL:", "").split()))


def redis_where(profile) -> str:
    cs = str(profile.setting("online_store", "connection_string", default="") or "")
    node = cs.split(",", 1)[0] or "localhost:6379"
    params = dict(p.split("=", 1) for p in cs.split(",")[1:] if "=" in p)
    user = params.get("username", "default").strip('"')
    return f"Redis at {node} (user {user!r}, db {params.get('db', '0')})"


def postgres_where(profile) -> str:
    off = profile.setting("offline_store", default={}) or {}
    return (f"PostgreSQL at {off.get('host')}:{off.get('port')} (user {off.get('user')!r}, "
            f"database {off.get('database')!r})")


def translate(exc: BaseException, profile=None) -> StoreError | None:
    """A one-line StoreError for a Redis/PostgreSQL connection or auth failure, else None."""
    for e in _chain(exc):
        mod = type(e).__module__
        if mod.startswith("redis"):
            from redis.exceptions import AuthenticationError, ConnectionError, ResponseError

            auth = isinstance(e, AuthenticationError) or (
                isinstance(e, ResponseError) and str(e).startswith(("NOAUTH", "WRONGPASS")))
            if auth or isinstance(e, ConnectionError):
                where = _where(redis_where, profile, "Redis")
                what = "authentication failed" if auth else "cannot connect"
                return StoreError(f"{where}: {what} ({_first_line(e)})")
        if mod.startswith(("psycopg", "sqlalchemy")) and type(e).__name__ == "OperationalError":
            return StoreError(f"{_where(postgres_where, profile, 'PostgreSQL')}: {_first_line(e)}")
    return None


def _where(fn, profile, fallback: str) -> str:
    try:
        from mt5lab.store import resolve

        return fn(resolve(profile))
    except Exception:  # the profile itself is broken: still say which service failed
        return fallback


_CHECKED: set[int] = set()


def check_online(profile) -> None:
    """Fail fast, in one line, when the profile's Redis refuses us (once per process and server).

    redis-py retries a refused AUTH (an AuthenticationError is a ConnectionError) with backoff for
    ~15 s before Feast sees it; this PING uses the connection string exactly as Feast parses it, with
    no retries. Other online stores need no check.
    """
    cfg = profile.setting("online_store", default={}) or {}
    if cfg.get("type") != "redis" or cfg.get("redis_type", "redis") != "redis":
        return
    cs = str(cfg.get("connection_string", ""))
    if hash(cs) in _CHECKED:
        return
    from feast.infra.online_stores.redis import RedisOnlineStore
    from redis import Redis
    from redis.backoff import NoBackoff
    from redis.exceptions import RedisError
    from redis.retry import Retry

    nodes, kwargs = RedisOnlineStore._parse_connection_string(cs)  # Feast's own parser
    kwargs.setdefault("socket_connect_timeout", 5)
    client = Redis(host=nodes[0]["host"], port=int(nodes[0]["port"]), retry=Retry(NoBackoff(), 0),
                   **kwargs)
    try:
        client.ping()
    except RedisError as exc:
        raise (translate(exc, profile) or StoreError(f"{redis_where(profile)}: {_first_line(exc)}")) from None
    finally:
        client.close()
    _CHECKED.add(hash(cs))
