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
- :mod:`catalog` - the catalog module itself (``mt5lab.catalog.FEATURE_NAMES``, ...).

Every name above, and every sub-package, is imported on first use: ``import mt5lab`` itself loads
no Feast, Spark, matplotlib, TA-Lib or pandas (``tests/test_lazy_import.py``).
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version

from mt5lab import _warnings  # noqa: F401  (first: silences tqdm's notebook warning)

# The public API, imported on first use (PEP 562): ``import mt5lab`` stays cheap (no Feast, Spark,
# matplotlib, TA-Lib or pandas until a name that needs them is touched).
_API = {
    "OnlineReader": "mt5lab.online.reader",
    "catalog": "mt5lab.catalog",
    "compute_features": "mt5lab.features.compute",
    "feature_store": "mt5lab.feast_repo.store",
    "follow": "mt5lab.online.follow",
    "freshness": "mt5lab.online.freshness",
    "online_features": "mt5lab.online.reader",
    "save_training_set": "mt5lab.training.manifest",
    "training_set": "mt5lab.training.assemble",
    "update": "mt5lab.online.update",
}
_SUBPACKAGES = ("bars", "cli", "config", "errors", "feast_repo", "features", "notebook", "online", "plots",
                "research", "storage", "testing", "training")

try:
    __version__ = version("mt5lab")
except PackageNotFoundError:  # pragma: no cover
    __version__ = "0+unknown"

__all__ = ["OnlineReader", "__version__", "catalog", "compute_features", "feature_store", "follow",
           "freshness", "online_features", "save_training_set", "training_set", "update"]


def __getattr__(name: str):
    """``mt5lab.<name>``: the public API and the sub-packages, imported when first asked for."""
    if name in _API:
        module = importlib.import_module(_API[name])
        value = module if name == "catalog" else getattr(module, name)
    elif name in _SUBPACKAGES:
        value = importlib.import_module(f"mt5lab.{name}")
    else:
        raise AttributeError(f"module 'mt5lab' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_API, *_SUBPACKAGES})
