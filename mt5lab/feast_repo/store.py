"""Feast ``FeatureStore`` per profile and timeframe, built from an in-memory config, and ``apply``."""

from __future__ import annotations

import json
import logging
import warnings

from mt5lab.catalog import DEFAULT_TIMEFRAME, VIEW_NAMES, check_timeframe
from mt5lab.config import Profile, resolve
from mt5lab.storage import open_store

log = logging.getLogger(__name__)


def _quiet_feast() -> None:
    for name in ("feast", "feast.infra", "feast.repo_config"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module=r"feast(\.|$)")


_STORES: dict[tuple[str, int, str], object] = {}


def _store(profile: Profile, timeframe: str):
    from feast import FeatureStore

    key = (profile.name, hash(json.dumps(profile.raw, sort_keys=True, default=str)), timeframe)
    if key not in _STORES:
        _quiet_feast()
        fs = FeatureStore(config=profile.repo_config(timeframe))
        _bootstrap_registry(profile, fs)
        _STORES[key] = fs
    return _STORES[key]


def _bootstrap_registry(profile: Profile, fs) -> None:
    """Open the registry now. A SQL registry creates its tables and project rows on first open:
    two processes doing that at once can collide, so the team profile does it under an advisory
    lock (:meth:`mt5lab.storage.postgres.PostgresStore.registry_lock`)."""
    if profile.setting("registry", "registry_type") != "sql":
        return

    guard = getattr(open_store(profile), "registry_lock", None)
    if guard is None:
        fs.registry  # noqa: B018
        return
    with guard():
        fs.registry  # noqa: B018


def feature_store(profile: str | Profile | None = None, timeframe: str = DEFAULT_TIMEFRAME):
    """Feast's ``feast.FeatureStore`` of ``profile`` for ``timeframe``: the secure store setup.

    The profile's ``feature_store*.yaml`` is checked (every ``${VAR}`` set, else one ConfigError
    naming all missing ones), its secrets substituted into the *parsed* config in memory (no file
    with a credential is written) and the registry opened (a SQL registry under an advisory lock).
    D1 is the Feast project ``mt5lab``; every other timeframe its own project (``mt5lab_h1``, ...).
    One store per (profile, timeframe) is cached per process. It is Feast's own object: every Feast
    SDK call works on it, with the project, registry and stores the profile names.

    Example (after ``make demo``)::

        import pandas as pd
        import mt5lab

        fs = mt5lab.feature_store()                   # local profile, D1: Feast project "mt5lab"
        service = fs.get_feature_service("mt5_v1")    # all 42 catalog features
        online = fs.get_online_features(features=service, entity_rows=[{"symbol": "GOOG"}]).to_dict()
        entity_df = pd.DataFrame({"symbol": ["GOOG", "GOOG"],
                                  "event_timestamp": pd.to_datetime(["2013-01-02 12:00", "2013-03-02 00:00"],
                                                                    utc=True)})
        train = fs.get_historical_features(entity_df=entity_df, features=service).to_df()
        fs_h1 = mt5lab.feature_store(timeframe="H1")  # project "mt5lab_h1": EURUSD's hourly views

    Args:
        profile: ``"local"``, ``"postgres"``, a loaded :class:`mt5lab.config.Profile`, or None
            (``MT5LAB_PROFILE``, default ``local``).
        timeframe: ``M1`` ... ``W1``; ValueError for any other.

    Raises:
        ConfigError: unknown profile or unset variables. StoreError: a store refused the connection.
    """
    return _store(resolve(profile), check_timeframe(timeframe))


def apply(profile=None, timeframe: str = DEFAULT_TIMEFRAME) -> dict[str, int]:
    """Register the catalog's entity, source, six views and ``mt5_v1`` for one timeframe.

    Idempotent: applying twice changes nothing. Views or services in the project that the catalog no
    longer has are deleted, so the registry always equals the catalog. A no-op is cheap: first a
    stamp check that needs no Feast import, then a spec-by-spec comparison; Feast's ``apply`` (which
    rewrites the registry) runs only when something differs (:mod:`mt5lab.feast_repo.applied`).

    Returns:
        ``{"views", "features", "services", "catalog_views_present"}`` counts of the project.
    """
    from mt5lab.feast_repo import applied

    prof = resolve(profile)
    tf = check_timeframe(timeframe)
    offline = open_store(prof)
    features_path = offline.features_path(tf) if hasattr(offline, "features_path") else None
    known = applied.unchanged(prof, tf, features_path)
    if known is not None:
        log.debug("apply %s: registry unchanged since the last apply (stamp)", tf)
        return known
    from mt5lab.feast_repo.definitions import definitions

    fs = feature_store(prof, tf)
    objects = definitions(offline.feast_source(tf), tf)
    wanted = {type(o).__name__ + ":" + o.name for o in objects}
    with offline.lock():
        before = applied.registry_digest(prof)
        fs.refresh_registry()
        if applied.differences(fs, objects) or applied.online_missing(prof):
            existing = [*fs.list_feature_views(), *fs.list_feature_services()]
            stale = [o for o in existing if type(o).__name__ + ":" + o.name not in wanted]
            fs.apply(objects, objects_to_delete=stale, partial=False)
            fs.refresh_registry()
        summary = registry_summary(prof, tf)
        applied.remember(prof, tf, summary, features_path, previous=before)
    return summary


def registry_summary(profile=None, timeframe: str = DEFAULT_TIMEFRAME) -> dict[str, int]:
    fs = feature_store(profile, timeframe)
    views = fs.list_feature_views()
    return {
        "views": len(views),
        "features": sum(len(v.features) for v in views),
        "services": len(fs.list_feature_services()),
        "catalog_views_present": sum(v.name in VIEW_NAMES for v in views),
    }
