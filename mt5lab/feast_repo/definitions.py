"""Feast objects generated from the catalog: one entity, six views, one service per timeframe.

``feature_repo/*.py`` and ``mt5lab apply`` both call these builders, so the registry always matches
:mod:`mt5lab.catalog`. The batch source comes from the profile's offline store.
"""

from __future__ import annotations

from feast import Entity, FeatureService, FeatureView, Field, ValueType
from feast.types import Float64, Int64

from mt5lab.catalog import (
    CATALOG_VERSION,
    DEFAULT_TIMEFRAME,
    ENTITY,
    FEATURE_SERVICE,
    VIEWS,
    catalog_hash,
    check_timeframe,
    ttl,
)

_DTYPES = {"Float64": Float64, "Int64": Int64}


def entity() -> Entity:
    return Entity(name=ENTITY, join_keys=[ENTITY], value_type=ValueType.STRING,
                  description="Trading symbol as the broker names it (for example EURUSD).")


def feature_views(source, timeframe: str = DEFAULT_TIMEFRAME) -> list[FeatureView]:
    tf = check_timeframe(timeframe)
    ent = entity()
    tags = {"catalog_version": str(CATALOG_VERSION), "catalog_hash": catalog_hash(), "timeframe": tf}
    return [
        FeatureView(
            name=v.name,
            entities=[ent],
            ttl=ttl(tf),
            schema=[Field(name=f.name, dtype=_DTYPES[f.dtype],
                          description=f"{f.description} [{f.definition}; warm-up {f.warmup} bars]")
                    for f in v.features],
            source=source,
            online=True,
            description=f"{v.description} Timeframe {tf}; event_timestamp is the bar close.",
            tags=tags,
        )
        for v in VIEWS
    ]


def feature_service(views: list[FeatureView]) -> FeatureService:
    return FeatureService(
        name=FEATURE_SERVICE,
        features=views,
        description="Model contract v1: all 42 catalog features. Changing it means a new version.",
        tags={"catalog_hash": catalog_hash()},
    )


def definitions(source, timeframe: str = DEFAULT_TIMEFRAME) -> list:
    """Everything ``apply`` registers for one timeframe (= one Feast project)."""
    views = feature_views(source, timeframe)
    return [entity(), source, *views, feature_service(views)]
