"""Online reads through Feast's public ``get_online_features``."""

from __future__ import annotations

import pandas as pd

from mt5lab.catalog import FEATURE_SERVICE
from mt5lab.store import feature_store


def online_frame(symbols: list[str], timeframe: str = "D1", profile=None,
                 features: str | list[str] = FEATURE_SERVICE) -> pd.DataFrame:
    """One row per symbol with the service's features, as Feast returns them."""
    fs = feature_store(profile, timeframe)
    feats = fs.get_feature_service(features) if isinstance(features, str) else features
    resp = fs.get_online_features(features=feats, entity_rows=[{"symbol": s} for s in symbols])
    return resp.to_df()
