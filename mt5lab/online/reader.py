"""Fast online reads with each value's event timestamp and a status: fresh, expired, future or missing.

Feast ignores a view's ``ttl`` on online reads (feast-dev/feast#6821): a value written a month ago
comes back as if it were current. mt5lab does not. Policy, per view and symbol:

``fresh``
    ``event_timestamp <= now`` and ``now - event_timestamp <= ttl``: the value, as Feast returns it.
``expired``
    older than the view's ttl (:func:`mt5lab.catalog.ttl`: the longest normal closure plus one
    bar). The values come back **null** (the same answer a point-in-time join gives offline for a
    row beyond ttl), with the event timestamp kept so the caller sees how old it was.
    ``keep_expired=True`` returns the old values, still flagged ``expired``.
``future``
    ``event_timestamp > now``: the bar closes after ``now`` (only possible with an explicit past
    ``now`` or a writer that stored a forming bar). Using it would be look-ahead: null, always.
``missing``
    the online store has no row for the symbol in that view: null, no timestamp.

A stale feature that looks fresh is how trading systems lose money: check ``status`` (or the
row-level ``status`` of :func:`online_features`, the worst of its views) before acting.

:class:`OnlineReader` resolves everything once; keep one per process in a live loop.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd

from mt5lab.catalog import BY_NAME, DEFAULT_TIMEFRAME, FEATURE_SERVICE
from mt5lab.config import resolve
from mt5lab.online.tables import OnlineTables, to_python

STATUSES = ("fresh", "expired", "future", "missing")
_RANK = {s: i for i, s in enumerate(("fresh", "expired", "future", "missing"))}


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got naive {now!r}")
    return now


@dataclass
class OnlineRows:
    """One read: per feature a list of values, per view a list of event timestamps and statuses,
    aligned with ``symbols``."""

    symbols: list[str]
    values: dict[str, list]
    event_timestamps: dict[str, list[datetime | None]]
    status: dict[str, list[str]]
    view_of: dict[str, str]

    def row_status(self) -> list[str]:
        """Per symbol, the worst status over its views (missing > future > expired > fresh)."""
        per_view = list(self.status.values())
        return [max((s[i] for s in per_view), key=_RANK.__getitem__) for i in range(len(self.symbols))]

    def to_df(self) -> pd.DataFrame:
        """One row per symbol: ``symbol``, the features, then per view ``<view>__event_timestamp``
        and ``<view>__status``, and ``status`` (the worst of the views)."""
        cols: dict[str, object] = {"symbol": self.symbols}
        for f, vals in self.values.items():
            cols[f] = pd.array(vals, dtype="Int64" if BY_NAME[f].dtype == "Int64" else "float64")
        for view, ts in self.event_timestamps.items():
            cols[f"{view}__event_timestamp"] = pd.to_datetime(ts, utc=True)
            cols[f"{view}__status"] = self.status[view]
        cols["status"] = self.row_status()
        return pd.DataFrame(cols)


class OnlineReader:
    """A persistent reader of one feature service (default ``mt5_v1``) and timeframe.

    >>> reader = OnlineReader(timeframe="H1")           # once
    >>> rows = reader.read(["EURUSD"])                  # every bar
    >>> if rows.row_status()[0] == "fresh": ...
    """

    def __init__(self, profile=None, timeframe: str = DEFAULT_TIMEFRAME,
                 features: str | list[str] = FEATURE_SERVICE):
        self.tables = OnlineTables(profile, timeframe, features)
        self.timeframe = self.tables.timeframe
        self._views = [(fv.name, feats, fv.ttl if fv.ttl and fv.ttl.total_seconds() > 0 else None)
                       for fv, feats in self.tables.views]
        self.view_of = {f: name for name, feats, _ in self._views for f in feats}

    def read(self, symbols: list[str], now: datetime | None = None,
             keep_expired: bool = False) -> OnlineRows:
        """Read ``symbols`` from every view (one ``online_read`` per view)."""
        now = _now(now)
        symbols = list(symbols)
        keys = self.tables.keys(symbols)
        values: dict[str, list] = {}
        stamps: dict[str, list] = {}
        status: dict[str, list] = {}
        n = len(symbols)
        for i, (view, feats, ttl) in enumerate(self._views):
            rows = self.tables.read_view(i, keys)
            cols = [[None] * n for _ in feats]
            st = ["missing"] * n
            ts_out: list = [None] * n
            for j, (ts, vals) in enumerate(rows):
                if ts is None:
                    continue
                ts_out[j] = ts
                if ts > now:
                    st[j] = "future"
                    continue
                if ttl is not None and now - ts > ttl:
                    st[j] = "expired"
                    if not keep_expired:
                        continue
                else:
                    st[j] = "fresh"
                for col, f in zip(cols, feats, strict=True):
                    v = vals.get(f)
                    col[j] = None if v is None else to_python(v)
            values.update(zip(feats, cols, strict=True))
            stamps[view] = ts_out
            status[view] = st
        return OnlineRows(symbols, values, stamps, status, self.view_of)

    def frame(self, symbols: list[str], now: datetime | None = None,
              keep_expired: bool = False) -> pd.DataFrame:
        return self.read(symbols, now, keep_expired).to_df()


_READERS: dict[tuple, OnlineReader] = {}


def reader(profile=None, timeframe: str = DEFAULT_TIMEFRAME,
           features: str | list[str] = FEATURE_SERVICE) -> OnlineReader:
    """A cached :class:`OnlineReader` (one per profile, timeframe and feature set)."""
    prof = resolve(profile)
    key = (prof.name, json.dumps(prof.raw, sort_keys=True, default=str), timeframe.upper(),
           features if isinstance(features, str) else tuple(features))
    if key not in _READERS:
        _READERS[key] = OnlineReader(prof, timeframe, features)
    return _READERS[key]


def online_features(symbols: list[str] | str, features: str | list[str] = FEATURE_SERVICE, *,
                    profile=None, timeframe: str = DEFAULT_TIMEFRAME, now: datetime | None = None,
                    keep_expired: bool = False) -> pd.DataFrame:
    """The online features of ``symbols``: Feast's values plus per-view event timestamps and status.

    Returns one row per symbol: ``symbol``, the features (same values as Feast's
    ``get_online_features`` for fresh rows), ``<view>__event_timestamp``, ``<view>__status`` and
    ``status`` (the worst view). Expired, future and missing values are null (see module docs).
    """
    if isinstance(symbols, str):
        symbols = [symbols]
    return reader(profile, timeframe, features).frame(symbols, now, keep_expired)


def clear_cache() -> None:
    _READERS.clear()
