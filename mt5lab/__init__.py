"""mt5lab: a Jupyter-centric feature store for MetaTrader 5 research, on Feast.

Public API (names later code and users depend on):

- :func:`compute_features` - the 42 catalog features of canonical bars (pure, TA-Lib).
- :mod:`mt5lab.catalog` - the one feature catalog (data).
- :func:`update` - incremental update: new bars -> features -> offline + online, one step.
- :func:`online_features` / :class:`OnlineReader` - fast online reads with event timestamps
  and status (fresh, expired, future, missing); :func:`freshness` - staleness per view/symbol.
- :func:`training_set` - point-in-time training sets (Feast semantics, polars speed);
  :func:`save_training_set` - Parquet plus manifest; :mod:`mt5lab.splits` - purged splits.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from mt5lab import _warnings  # noqa: F401  (first: silences tqdm's notebook warning)
from mt5lab.compute import compute_features
from mt5lab.freshness import freshness
from mt5lab.manifest import save_training_set
from mt5lab.online_reader import OnlineReader, online_features
from mt5lab.training import training_set
from mt5lab.update import update

try:
    __version__ = version("mt5lab")
except PackageNotFoundError:  # pragma: no cover
    __version__ = "0+unknown"

__all__ = ["OnlineReader", "__version__", "compute_features", "freshness", "online_features",
           "save_training_set", "training_set", "update"]
