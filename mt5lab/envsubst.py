"""Substitute ``${VAR}`` values into a *parsed* profile, each encoded for the syntax it lands in.

Why after parsing: a value substituted into YAML text is parsed as YAML, so a password such as
``123456`` becomes an int (Feast's ``StrictStr`` then refuses it), ``x #y`` loses its tail to a
comment and an empty one becomes null. Substituting into the parsed strings keeps every value a
string, byte for byte; pydantic still coerces ``port: "5432"`` to an int.

Where a value lands decides its encoding:

- inside a URL (a string with ``://``, e.g. the SQL registry's SQLAlchemy URL): percent-encoded,
  so ``@ : / ? # %`` in a password cannot change the URL's structure (SQLAlchemy decodes it);
- inside Feast's Redis ``connection_string`` (``host:port,key=value,...``): Feast splits it on
  commas, so a value with a comma is refused (ConfigError naming the variable, never the value);
  Feast also ``json.loads`` each ``key=value``, which would turn a password ``123`` into an int or
  ``null`` into None, so passwords are written as JSON strings;
- anywhere else: verbatim.

Nothing here is written to disk or logged.
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote

from mt5lab.errors import ConfigError

VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def is_secret(var: str) -> bool:
    return var.endswith("_PASSWORD")


def expand(node, values: dict[str, str], path: tuple[str, ...] = ()):
    """A copy of ``node`` (parsed YAML) with every ``${VAR}`` in its strings replaced."""
    if isinstance(node, dict):
        return {k: expand(v, values, (*path, str(k))) for k, v in node.items()}
    if isinstance(node, list):
        return [expand(v, values, (*path, str(i))) for i, v in enumerate(node)]
    if isinstance(node, str):
        return _expand_str(node, values, path)
    return node


def _expand_str(text: str, values: dict[str, str], path: tuple[str, ...]) -> str:
    if "://" in text:
        return VAR.sub(lambda m: quote(values[m.group(1)], safe=""), text)
    if path and path[-1] == "connection_string":
        return VAR.sub(lambda m: _redis_value(m.group(1), values[m.group(1)], path), text)
    return VAR.sub(lambda m: values[m.group(1)], text)


def _redis_value(var: str, value: str, path: tuple[str, ...]) -> str:
    if "," in value:
        raise ConfigError(
            f"{var} contains a comma, which {'.'.join(path)} cannot carry: Feast splits the Redis "
            f"connection string on commas. Use a value without ','"
            + (" (change the Redis password)" if is_secret(var) else "")
        )
    return json.dumps(value) if is_secret(var) else value
