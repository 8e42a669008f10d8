"""The six feature views, generated from mt5lab.catalog (no hand-written feature lists)."""

from data_sources import TIMEFRAME, features_source

from mt5lab.feast_repo.definitions import feature_views

_views = feature_views(features_source, TIMEFRAME)
ohlcv_features, technical_indicators_ma, technical_indicators_momentum, \
    technical_indicators_volatility, volume_indicators, price_action = _views
