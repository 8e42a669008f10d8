"""What a user sees when something fails: mt5lab's error types, one line each, with no secret in them.

- Error types: every failure a user can cause is an :class:`Mt5LabError` subclass; the CLI prints
  ``str(error)`` on one line and exits with its ``exit_code`` (2 bad input, 3 configuration, 4 store).
- Redaction: :func:`redact` takes the values of :data:`SECRET_VARS` (as set, percent-encoded and
  JSON-quoted), DSN passwords and ``password=...`` pairs out of any text; :func:`install_log_redaction`
  applies it to every log line and logged traceback.
- Driver errors: Feast's Redis and SQL-registry code raises redis-py and SQLAlchemy errors from deep
  inside its calls; :func:`translate` walks the exception chain, recognises those drivers' connection
  and authentication errors and rebuilds the message from the profile's *non-secret* settings (host,
  port, user, database), never from a DSN, a connection string or the original message's arguments.
"""

from __future__ import annotations

import json
import logging
import os
import re
from urllib.parse import quote

SECRET_VARS = ("MT5LAB_PG_PASSWORD", "MT5LAB_REDIS_PASSWORD")
"""Profile variables whose values never appear in a message, a log line or a traceback."""

class Mt5LabError(Exception):
    """Base class: the CLI prints ``str(error)`` on one line and exits non-zero."""

    exit_code = 1


class BarValidationError(Mt5LabError, ValueError):
    """A bar file or frame breaks a rule. Nothing has been written.

    ``row`` is the 1-based data row in the source (header excluded), or None for file-level rules.
    """

    exit_code = 2

    def __init__(self, source: str, row: int | None, rule: str, detail: str = ""):
        self.source, self.row, self.rule, self.detail = str(source), row, rule, detail
        where = f"{self.source}: row {row}" if row is not None else self.source
        super().__init__(f"{where}: {rule}" + (f": {detail}" if detail else ""))


class ConfigError(Mt5LabError):
    """A profile or environment setting is missing or wrong (never includes secret values)."""

    exit_code = 3


class StoreError(Mt5LabError):
    """The offline or online store refused an operation (connection, auth, disk, lock)."""

    exit_code = 4


class MaxLossExceeded(Mt5LabError):
    """Rows disappeared where none may (a join or a write lost rows silently)."""

    exit_code = 5


class Mt5LabWarning(UserWarning):
    """Something mt5lab assumed or could not rule out (an epoch unit, a clock it doubts): loud, not fatal.

    The CLI prints each as one ``warning:`` line on stderr.
    """


class TrainingSetError(Mt5LabError, ValueError):
    """A training-set request is invalid (entity frame, feature refs, labels or splits); names the
    source, row and rule where there is one. Nothing has been computed."""

    exit_code = 2


# --- redaction: secrets out of every message ---

_DSN = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s]*)@", re.I)
_KV = re.compile(r"(?P<key>password|passwd|pwd)\s*(?P<sep>[=:])\s*(?P<val>'[^']*'|\"[^\"]*\"|[^\s,;&]+)",
                 re.I)


def secrets() -> list[str]:
    """Secret values as set, and as encoded into URLs (percent) and Redis strings (JSON)."""
    out = set()
    for k in SECRET_VARS:
        v = os.environ.get(k) or ""
        if len(v) >= 4:  # replacing a 1-3 character value everywhere would garble every message
            out |= {v, quote(v, safe=""), json.dumps(v)[1:-1]}
    return sorted(out, key=len, reverse=True)


def redact(text: str) -> str:
    """Replace known secret values, DSN passwords and ``password=...`` pairs with ``***``."""
    text = str(text)
    for value in sorted(secrets(), key=len, reverse=True):
        text = text.replace(value, "***")
    text = _DSN.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    return _KV.sub(lambda m: f"{m['key']}{m['sep']}***", text)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the formatted message (and drops exception text args)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = ()
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def install_log_redaction() -> None:
    """Attach the filter to every handler of the root logger (idempotent)."""
    root = logging.getLogger()
    for handler in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


# --- driver errors: one line naming server and user ---

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
    """A one-line StoreError for a Redis/PostgreSQL connection or auth failure, else None.

    ``profile`` is a resolved :class:`mt5lab.config.Profile` (or None: the message then names the
    service without its address)."""
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
    """``fn(profile)`` for a resolved profile; the service's name alone when there is none."""
    try:
        return fn(profile) if profile is not None and not isinstance(profile, str) else fallback
    except Exception:  # the profile itself is broken: still say which service failed
        return fallback
