"""The Spark engine's Feast setup: ``SparkOfflineStore``, the ``spark.engine`` batch engine, and the
catalog's views over the Spark dataset (SparkSource), in a registry of their own.

Built in memory from the profile like every mt5lab store (secrets substituted, never written):

* ``offline_store: {type: spark, spark_conf: <flat spark.* keys>}``;
* ``batch_engine: {type: spark.engine, <the same flat spark.* keys>}``: Feast 0.67 hands the whole
  ``batch_engine`` mapping to ``SparkConf.setAll`` and silently drops a nested ``spark_conf`` (the
  session would then run ``local[*]``), so the keys sit flat. Both Feast paths first take the active
  SparkSession, which :func:`mt5lab.spark.session.spark_session` makes with these same keys;
* ``online_store``: the profile's (Redis on the team profile; it must be reachable from executors);
* ``registry``: a file registry in ``<data>/offline/spark/registry.db``, one Feast project per
  timeframe as usual (``mt5lab``, ``mt5lab_h1``, ...), so the local profile's registry and its
  FileSource views stay untouched.
"""

from __future__ import annotations

import json
import logging
import warnings
from contextlib import contextmanager
from pathlib import Path

from mt5lab.catalog import FEATURE_SERVICE, check_timeframe
from mt5lab.config import project_for, repo_path, resolve
from mt5lab.spark.session import spark_conf

_STORES: dict[tuple, object] = {}


def repo_config(store, timeframe: str, profile=None, online_store: dict | None = None):
    """Feast's ``RepoConfig`` of the Spark engine for ``timeframe`` over ``store``'s dataset."""
    from feast.repo_config import RepoConfig

    prof = resolve(profile)
    conf = spark_conf()
    raw = {
        "project": project_for(prof.base_project, check_timeframe(timeframe)),
        "provider": "local",
        "registry": {"registry_type": "file", "cache_ttl_seconds": 60,
                     "path": str(Path(store.root) / "offline" / "spark" / "registry.db")},
        "online_store": dict(online_store or prof.raw["online_store"]),
        "offline_store": {"type": "spark", "spark_conf": conf},
        "batch_engine": {"type": "spark.engine", **conf},
        "entity_key_serialization_version": 3,
        "auth": {"type": "no_auth"},
    }
    cfg = RepoConfig(**raw)
    cfg.repo_path = repo_path()
    return cfg


def spark_feature_store(store, timeframe: str, profile=None, online_store: dict | None = None):
    """Feast's ``FeatureStore`` of the Spark engine (cached per dataset, timeframe and online store),
    with the catalog applied (SparkSource views, ``mt5_v1``) the first time."""
    from feast import FeatureStore

    prof = resolve(profile)
    online = dict(online_store or prof.raw["online_store"])
    key = (str(store.root), check_timeframe(timeframe), prof.name, json.dumps(online, sort_keys=True, default=str))
    if key not in _STORES:
        for name in ("feast", "feast.infra", "feast.repo_config"):
            logging.getLogger(name).setLevel(logging.WARNING)
        warnings.filterwarnings("ignore", module=r"feast(\.|$)")
        Path(store.root, "offline", "spark").mkdir(parents=True, exist_ok=True)
        fs = FeatureStore(config=repo_config(store, timeframe, prof, online))
        with quiet_spark_warnings():
            apply_catalog(fs, store, timeframe)
        _STORES[key] = fs
    return _STORES[key]


def apply_catalog(fs, store, timeframe: str) -> None:
    """Register the catalog's entity, SparkSource, six views and ``mt5_v1`` (idempotent)."""
    from mt5lab.feast_repo.definitions import definitions

    objects = definitions(store.feast_source(timeframe), timeframe)
    try:
        fs.get_feature_service(FEATURE_SERVICE)
        if {v.name for v in fs.list_feature_views()} == {o.name for o in objects if type(o).__name__ == "FeatureView"}:
            return
    except Exception:  # FeatureServiceNotFoundException: a fresh registry
        pass
    fs.apply(objects)
    fs.refresh_registry()


@contextmanager
def quiet_spark_warnings():
    """Without Feast's "experimental feature in alpha development" RuntimeWarnings (one per call)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"The spark .*experimental", category=RuntimeWarning)
        yield


def clear_cache() -> None:
    _STORES.clear()
