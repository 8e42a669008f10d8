"""Online reads through Feast's public ``get_online_features``."""

from __future__ import annotations

import pandas as pd

from mt5lab.catalog import FEATURE_NAMES, FEATURE_SERVICE
from mt5lab.config import resolve
from mt5lab.feast_repo.store import feature_store
from mt5lab.online.tables import check_online


def online_frame(symbols: list[str], timeframe: str = "D1", profile=None,
                 features: str | list[str] = FEATURE_SERVICE) -> pd.DataFrame:
    """One row per symbol with the service's features, as Feast returns them."""
    prof = resolve(profile)
    check_online(prof)  # a refused password: one clear line now, not retries later
    fs = feature_store(prof, timeframe)
    feats = fs.get_feature_service(features) if isinstance(features, str) else features
    resp = fs.get_online_features(features=feats, entity_rows=[{"symbol": s} for s in symbols])
    df = resp.to_df()
    ordered = [c for c in ["symbol", *FEATURE_NAMES] if c in df.columns]
    return df[ordered + [c for c in df.columns if c not in ordered]]
