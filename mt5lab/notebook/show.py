"""How a notebook shows what it records: compact tables, and live figures when asked.

- :func:`table`: a recorded value as a person reads it. A frame stays a frame; a dict of scalars is
  one row (keys as columns), a dict holding lists or dicts is ``name | value`` rows, a list of
  dicts is a table; times are ``YYYY-MM-DD HH:MM`` UTC (never ``datetime.datetime(..., tzinfo=
  ZoneInfo(...))``); floats keep 6 significant digits.
- :func:`records_table`: everything a run recorded, one line per record (what ``nb.done()`` shows).
- :func:`interactive_enabled`: whether figures are live (ipympl) in this kernel.

**Interactive route: ipympl** (matplotlib's own Jupyter widget backend, maintained by the matplotlib
organisation). The figures a notebook draws *are* the report's PNGs; ipympl makes those same
matplotlib figures zoomable, pannable, with the cursor's date and value in the toolbar, so there is
one plotting code path and the PNG and the live view cannot disagree. A second library (Bokeh,
Plotly) would mean a second version of every figure to keep honest.
"""

from __future__ import annotations

import json
import math
import os
from datetime import UTC, date, datetime

import pandas as pd

WIDE_MAX = 10  # a dict of at most this many scalars is shown as one row
TEXT_MAX = 160  # longest value text in records_table
BATCH_ENV = "MT5LAB_NB_BATCH"  # set by `make report` and the tests: never interactive


def _is_frame(value) -> bool:
    mod = type(value).__module__.split(".")[0]
    return mod in ("pandas", "polars") and hasattr(value, "columns")


def cell(value):
    """One value as a table cell: times in UTC minutes, floats to 6 significant digits."""
    if isinstance(value, datetime):
        v = value.astimezone(UTC) if value.tzinfo else value
        return v.strftime("%Y-%m-%d %H:%M:%S" if v.second else "%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return value if not math.isfinite(value) else float(f"{value:.6g}")
    if isinstance(value, dict | list | tuple | set):
        return text(value)
    mod = type(value).__module__.split(".")[0]
    if mod in ("numpy", "pandas") and hasattr(value, "item") and not hasattr(value, "tz"):
        return cell(value.item())
    if mod == "pandas" and hasattr(value, "to_pydatetime"):
        return None if pd.isna(value) else cell(value.to_pydatetime())
    return value


def text(value, limit: int = TEXT_MAX) -> str:
    """A compact one-line text of any recorded value (JSON-like, times as in :func:`cell`)."""
    from mt5lab.notebook.record import to_json

    if isinstance(value, str):
        out = value
    else:
        out = json.dumps(_plain(to_json(value)), ensure_ascii=False, separators=(", ", ": "))
    return out if len(out) <= limit else out[: limit - 1] + "…"


def _plain(v):
    if isinstance(v, str) and len(v) >= 16 and v[4] == "-" and v[10] == "T":  # an ISO time from to_json
        try:
            return cell(datetime.fromisoformat(v))
        except ValueError:
            return v
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def table(value):
    """What a notebook displays for a recorded ``value`` (see the module docstring)."""
    if _is_frame(value):
        return value
    if isinstance(value, dict):
        scalar = all(not isinstance(v, dict | list | tuple | set) and not _is_frame(v) for v in value.values())
        if scalar and len(value) <= WIDE_MAX:
            return pd.DataFrame([{str(k): cell(v) for k, v in value.items()}])
        return pd.DataFrame({"name": [str(k) for k in value],
                             "value": [text(v) if not isinstance(v, str) else v for v in value.values()]})
    if isinstance(value, list | tuple) and value and all(isinstance(v, dict) for v in value):
        return pd.DataFrame([{str(k): cell(x) for k, x in v.items()} for v in value])
    return cell(value)


def records_table(values: dict) -> pd.DataFrame:
    """Every record of a run as ``record | value`` rows (long values cut with an ellipsis)."""
    return pd.DataFrame({"record": list(values), "value": [text(v) for v in values.values()]})


def under_papermill() -> bool:
    """This kernel was started by papermill (a ``papermill`` process among its ancestors)."""
    try:
        import psutil

        return any("papermill" in " ".join(p.cmdline()) for p in psutil.Process().parents())
    except Exception:  # no process table (a sandbox): assume interactive use
        return False


def interactive_enabled(asked: bool) -> bool:
    """Live figures when ``asked``, inside a Jupyter kernel, outside batch runs (papermill, or
    ``MT5LAB_NB_BATCH`` set by ``make report`` and the tests, or ``MPLBACKEND=Agg``), and only if
    ipympl is installed. Switches the kernel to ipympl's ``widget`` backend when on."""
    if not asked or os.environ.get(BATCH_ENV) or os.environ.get("MPLBACKEND", "").lower() == "agg":
        return False
    if under_papermill():
        return False
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return False
    shell = get_ipython()
    if shell is None or not hasattr(shell, "kernel"):
        return False
    try:
        import ipympl  # noqa: F401
    except ImportError:
        return False
    shell.run_line_magic("matplotlib", "widget")
    return True
