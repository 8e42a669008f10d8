"""mt5lab: a Jupyter-centric feature store for MetaTrader 5 research, on Feast.

The package follows the trip a bar makes, one sub-package per stage; imports point down the stages
(``tests/test_layout.py`` enforces it):

- :mod:`mt5lab.catalog` - the one source of truth: bar schema, timeframes, 42 features, six views.
- :mod:`mt5lab.bars` - bars in: readers, server clock, validation, calendars, ingest.
- :mod:`mt5lab.storage` - the offline stores (Parquet, PostgreSQL) behind one interface.
- :mod:`mt5lab.feast_repo` - Feast wiring: FeatureStore per profile, catalog objects, registry.
- :mod:`mt5lab.features` - the TA-Lib computation, full build, incremental rows.
- :mod:`mt5lab.training` - point-in-time training sets, labels, purged splits, manifests.
- :mod:`mt5lab.online` - materialize, online reads, freshness, the HTTP server, ``update``.
- :mod:`mt5lab.research` / :mod:`mt5lab.plots` / :mod:`mt5lab.notebook` - what the notebooks call.

Public API (names later code and users depend on):

- :func:`compute_features` - the 42 catalog features of canonical bars (pure, TA-Lib).
- :func:`feature_store` - Feast's ``FeatureStore`` of a profile and timeframe, secrets kept in memory.
- :func:`update` - incremental update: new bars -> features -> offline + online, one step.
- :func:`follow` - the live feed: a terminal (or a replayed file) kept in the stores, bar by bar.
- :func:`online_features` / :class:`OnlineReader` - fast online reads with event timestamps
  and status (fresh, expired, future, missing); :func:`freshness` - staleness per view/symbol.
- :func:`training_set` - point-in-time training sets (Feast semantics, polars speed);
  :func:`save_training_set` - Parquet plus manifest; :mod:`mt5lab.training.splits` - purged splits.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from mt5lab import _warnings  # noqa: F401  (first: silences tqdm's notebook warning)
from mt5lab.feast_repo.store import feature_store
from mt5lab.features.compute import compute_features
from mt5lab.online.follow import follow
from mt5lab.online.freshness import freshness
from mt5lab.online.reader import OnlineReader, online_features
from mt5lab.online.update import update
from mt5lab.training.assemble import training_set
from mt5lab.training.manifest import save_training_set

try:
    __version__ = version("mt5lab")
except PackageNotFoundError:  # pragma: no cover
    __version__ = "0+unknown"

__all__ = ["OnlineReader", "__version__", "compute_features", "feature_store", "follow", "freshness",
           "online_features", "save_training_set", "training_set", "update"]
