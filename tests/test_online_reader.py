"""Online reads: the same values as Feast's get_online_features, plus event timestamps and the
expiry policy Feast lacks (feast-dev/feast#6821): expired and future values are null, flagged."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from mt5lab.catalog import FEATURE_NAMES, VIEW_NAMES, ttl
from mt5lab.errors import StoreError


def _py(v):
    return None if v is None or pd.isna(v) else v


@pytest.fixture
def goog(demo_store):
    from mt5lab.feast_repo.store import feature_store

    fs = feature_store(None, "D1")
    feast = fs.get_online_features(features=fs.get_feature_service("mt5_v1"),
                                   entity_rows=[{"symbol": "GOOG"}]).to_dict()
    feast = {k: v[0] for k, v in feast.items()}  # one entity row
    return {"feast": feast, "event": pd.Timestamp("2013-03-02", tz="UTC").to_pydatetime()}


def test_same_values_as_feast_with_timestamps(goog):
    from mt5lab import online_features

    df = online_features(["GOOG"], now=goog["event"] + timedelta(hours=1))
    assert list(df.columns[:43]) == ["symbol", *FEATURE_NAMES]
    for name in FEATURE_NAMES:
        assert _py(df[name][0]) == goog["feast"][name], name
    assert goog["feast"]["sma_200"] is not None and goog["feast"]["obv"] is not None
    for view in VIEW_NAMES:
        assert df[f"{view}__event_timestamp"][0] == goog["event"]
        assert df[f"{view}__status"][0] == "fresh"
    assert df["status"][0] == "fresh"
    assert str(df["cdl_doji"].dtype) == "Int64" and str(df["close"].dtype) == "float64"


def test_expired_values_are_null_unless_asked(goog):
    from mt5lab import online_features

    life = ttl("D1")
    at_ttl = online_features("GOOG", now=goog["event"] + life)
    assert at_ttl["status"][0] == "fresh" and _py(at_ttl["close"][0]) == goog["feast"]["close"]
    late = goog["event"] + life + timedelta(seconds=1)
    df = online_features("GOOG", now=late)
    assert df["status"][0] == "expired"
    assert all(_py(df[n][0]) is None for n in FEATURE_NAMES)
    assert df["ohlcv_features__event_timestamp"][0] == goog["event"]  # how old it was: kept
    kept = online_features("GOOG", now=late, keep_expired=True)
    assert kept["status"][0] == "expired"
    assert [_py(kept[n][0]) for n in FEATURE_NAMES] == [goog["feast"][n] for n in FEATURE_NAMES]


def test_future_and_missing(goog):
    from mt5lab import online_features

    df = online_features(["GOOG", "NEVER"], now=goog["event"] - timedelta(seconds=1), keep_expired=True)
    assert list(df["status"]) == ["future", "missing"]
    assert all(_py(df[n][i]) is None for n in FEATURE_NAMES for i in (0, 1))
    assert df["price_action__event_timestamp"][0] == goog["event"]
    assert pd.isna(df["price_action__event_timestamp"][1])
    with pytest.raises(ValueError, match="timezone-aware"):
        online_features("GOOG", now=goog["event"].replace(tzinfo=None))


def test_reader_with_feature_refs_and_rows(goog):
    from mt5lab import OnlineReader

    r = OnlineReader(features=["price_action:cdl_doji", "ohlcv_features:close", "ohlcv_features:open"])
    rows = r.read(["GOOG", "GOOG"], now=goog["event"])
    assert list(rows.values) == ["cdl_doji", "close", "open"]
    assert rows.values["close"] == [goog["feast"]["close"]] * 2
    assert set(rows.status) == {"price_action", "ohlcv_features"}
    assert rows.row_status() == ["fresh", "fresh"]
    with pytest.raises(StoreError, match="mt5lab apply --timeframe M5"):
        OnlineReader(timeframe="M5")
