"""Machine-readable results of a notebook run: ``record(name, value)`` into a JSON file.

A notebook records the numbers that matter (row counts, null shares, look-ahead mismatches, the
latest event timestamp, PSI flags) next to its executed copy, as ``<name>.records.json``. Tests and
``make report`` read that file instead of scraping notebook outputs. Values are converted to plain
JSON (numpy and polars scalars to numbers, datetimes to ISO 8601 strings, frames to lists of rows).
Every ``record`` rewrites the file atomically, so a run that fails halfway leaves the numbers it had
recorded so far, readable.

Never record a secret: a recorder refuses names that look like one (password, token, dsn, secret).
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from datetime import date, datetime, timedelta
from pathlib import Path

_SECRET = re.compile(r"pass(word)?|secret|token|dsn|credential", re.IGNORECASE)
SUFFIX = ".records.json"


def to_json(value):
    """``value`` as plain JSON data (recursively). Non-finite floats become None."""
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_json(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    mod = type(value).__module__.split(".")[0]
    if mod == "numpy":
        return to_json(value.tolist())
    if mod == "polars":
        return to_json(value.to_dicts() if hasattr(value, "to_dicts") else value.to_list())
    if mod == "pandas":
        if hasattr(value, "to_dict") and hasattr(value, "columns"):
            return to_json(value.to_dict(orient="records"))
        if hasattr(value, "isoformat"):  # Timestamp
            return None if value != value else value.isoformat()
        if hasattr(value, "to_list"):
            return to_json(value.to_list())
        if hasattr(value, "total_seconds"):  # Timedelta
            return value.total_seconds()
    if hasattr(value, "item"):  # other scalar wrappers
        return to_json(value.item())
    raise TypeError(f"cannot record a value of type {type(value).__name__}")


class Recorder:
    """Appends ``name -> value`` pairs to one JSON object on disk."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.values: dict = {}

    def __repr__(self) -> str:
        return f"Recorder({str(self.path)!r}, {len(self.values)} values)"

    def record(self, name: str, value):
        """Record ``value`` under ``name`` (a later call with the same name replaces it).

        Returns ``value`` unchanged, so a notebook line can record and show at once.
        """
        if not isinstance(name, str) or not name:
            raise ValueError("a record name must be a non-empty string")
        if _SECRET.search(name):
            raise ValueError(f"refusing to record {name!r}: names like that hold secrets")
        self.values[name] = to_json(value)
        self._write()
        return value

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".rec-", suffix=".json", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(self.values, fh, indent=1, sort_keys=True, allow_nan=False)
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; a report is for reading
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def records_path(out_dir: str | Path, notebook: str) -> Path:
    return Path(out_dir) / f"{notebook}{SUFFIX}"


def read_records(path: str | Path) -> dict:
    """The recorded values of one run (``{}`` if it recorded nothing)."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else {}
