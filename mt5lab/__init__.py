"""mt5lab: a Jupyter-centric feature store for MetaTrader 5 research, on Feast.

Public API (names later code and users depend on):

- :func:`compute_features` - the 42 catalog features of canonical bars (pure, TA-Lib).
- :mod:`mt5lab.catalog` - the one feature catalog (data).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from mt5lab.compute import compute_features

try:
    __version__ = version("mt5lab")
except PackageNotFoundError:  # pragma: no cover
    __version__ = "0+unknown"

__all__ = ["__version__", "compute_features"]
