"""The Feast registry next to the catalog, as tables: views x features, the feature service, ttl.

Everything is read from the applied registry (names, dtypes, descriptions, ttl, service projections)
and joined with :mod:`mt5lab.catalog` (definition, warm-up). :func:`registry_check` counts every
disagreement between the two, so a notebook can record "0 mismatches" as a fact, not a claim.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from mt5lab.catalog import (
    BY_NAME,
    CALENDARS,
    FEATURE_SERVICE,
    TIMEFRAMES,
    VIEW_NAMES,
    calendar_ttl,
    ttl,
)
from mt5lab.feast_repo.store import feature_store


def hours(td: timedelta | None) -> float | None:
    return None if td is None else td.total_seconds() / 3600


def views_table(profile=None, timeframe: str = "D1") -> pd.DataFrame:
    """One row per (registered view, feature): registry dtype/description/ttl + catalog warm-up.

    Features the catalog has but the registry lacks appear with ``in_registry = False``.
    """
    fs = feature_store(profile, timeframe)
    order = {name: i for i, name in enumerate(VIEW_NAMES)}
    views = sorted(fs.list_feature_views(), key=lambda v: (order.get(v.name, 99), v.name))
    rows, seen = [], set()
    for v in views:
        for fld in v.features:
            cat = BY_NAME.get(fld.name)
            seen.add(fld.name)
            rows.append({
                "view": v.name, "feature": fld.name, "dtype": str(fld.dtype),
                "catalog_dtype": cat.dtype if cat else None,
                "catalog_view": cat.view if cat else None,
                "ttl_h": hours(v.ttl), "warmup_bars": cat.warmup if cat else None,
                "description": fld.description, "in_registry": True,
            })
    for name, cat in BY_NAME.items():
        if name not in seen:
            rows.append({"view": cat.view, "feature": name, "dtype": None, "catalog_dtype": cat.dtype,
                         "catalog_view": cat.view, "ttl_h": None, "warmup_bars": cat.warmup,
                         "description": cat.description, "in_registry": False})
    return pd.DataFrame(rows)


def registry_check(table: pd.DataFrame, timeframe: str = "D1") -> dict:
    """Counts of views and features, and of every registry/catalog disagreement (all should be 0)."""
    reg = table[table["in_registry"]]
    want_ttl = hours(ttl(timeframe))
    return {
        "views": int(reg["view"].nunique()),
        "features": int(len(reg)),
        "missing_in_registry": int((~table["in_registry"]).sum()),
        "unknown_in_registry": int(reg["catalog_dtype"].isna().sum()),
        "dtype_mismatches": int((reg["dtype"] != reg["catalog_dtype"]).sum()),
        "view_mismatches": int((reg["view"] != reg["catalog_view"]).sum()),
        "ttl_mismatches": int((reg["ttl_h"] != want_ttl).sum()),
        "ttl_h": want_ttl,
    }


def views_overview(table: pd.DataFrame) -> pd.DataFrame:
    """Per view: feature count, dtypes, ttl and the largest warm-up."""
    reg = table[table["in_registry"]]
    return (reg.groupby("view", sort=False)
            .agg(features=("feature", "size"), dtypes=("dtype", lambda s: ", ".join(sorted(set(s)))),
                 ttl_h=("ttl_h", "first"), max_warmup_bars=("warmup_bars", "max"))
            .reset_index())


def service_table(profile=None, timeframe: str = "D1", name: str = FEATURE_SERVICE) -> pd.DataFrame:
    """The feature service as registered: one row per view projection with its features."""
    svc = feature_store(profile, timeframe).get_feature_service(name)
    return pd.DataFrame([
        {"service": svc.name, "view": p.name, "features": len(p.features),
         "names": " ".join(f.name for f in p.features)}
        for p in svc.feature_view_projections
    ])


def service_info(profile=None, timeframe: str = "D1", name: str = FEATURE_SERVICE) -> dict:
    svc = feature_store(profile, timeframe).get_feature_service(name)
    return {"name": svc.name, "description": svc.description, "tags": dict(svc.tags),
            "views": len(svc.feature_view_projections),
            "features": sum(len(p.features) for p in svc.feature_view_projections),
            "project": feature_store(profile, timeframe).project}


def ttl_table() -> pd.DataFrame:
    """The ttl rule for every timeframe: the longest normal closure of any calendar plus one bar
    (``ttl``, the views' ttl), and what each calendar alone would need (``ttl_<calendar>``)."""
    return pd.DataFrame([{"timeframe": tf, "bar": str(d), "ttl": str(ttl(tf)), "ttl_h": hours(ttl(tf)),
                          **{f"ttl_{c}": str(calendar_ttl(tf, c)) for c in CALENDARS}}
                         for tf, d in TIMEFRAMES.items()])


def views_display(table: pd.DataFrame) -> pd.DataFrame:
    """The views x features table as a person reads it (registry columns, catalog warm-up)."""
    shown = table[["view", "feature", "dtype", "ttl_h", "warmup_bars", "description"]]
    return shown.rename(columns={"ttl_h": "ttl (h)", "warmup_bars": "warm-up (bars)"}).set_index(
        ["view", "feature"])
