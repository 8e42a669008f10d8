"""Feature services are versioned model contracts: ``mt5_v1`` serves all 42 catalog features."""

from features import _views

from mt5lab.feast_repo.definitions import feature_service

mt5_v1 = feature_service(_views)
