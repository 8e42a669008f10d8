"""Keep secrets out of every message, log line and traceback mt5lab prints."""

from __future__ import annotations

import json
import logging
import os
import re
from urllib.parse import quote

from mt5lab.config import SECRET_VARS

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
