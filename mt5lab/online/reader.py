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

from datetime import UTC, datetime

import numpy as np
import pandas as pd

from mt5lab.catalog import DEFAULT_TIMEFRAME, FEATURE_SERVICE
from mt5lab.config import resolve
from mt5lab.online.decode import doubles, integers
from mt5lab.online.rows import STATUSES, Layout, OnlineRows
from mt5lab.online.store_reads import reads_for
from mt5lab.online.tables import OnlineTables

__all__ = ["STATUSES", "OnlineReader", "OnlineRows", "online_features", "reader"]
OUTPUTS = ("pandas", "polars", "dict", "rows")


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got naive {now!r}")
    return now


class OnlineReader:
    """A persistent reader of one feature service (default ``mt5_v1``) and timeframe.

    >>> reader = OnlineReader(timeframe="H1")           # once
    >>> rows = reader.read(["EURUSD"])                  # every bar
    >>> if rows.row_status()[0] == "fresh": ...

    A read is one round trip to the online store for all views and symbols (Redis: one pipeline of
    one HMGET per symbol; SQLite: one query), see :mod:`mt5lab.online.store_reads`.
    """

    def __init__(self, profile=None, timeframe: str = DEFAULT_TIMEFRAME,
                 features: str | list[str] = FEATURE_SERVICE):
        self.tables = OnlineTables(profile, timeframe, features)
        self.timeframe = self.tables.timeframe
        self._views = [(fv.name, feats, fv.ttl if fv.ttl and fv.ttl.total_seconds() > 0 else None)
                       for fv, feats in self.tables.views]
        self.view_of = {f: name for name, feats, _ in self._views for f in feats}
        self._reads = reads_for(self.tables)
        self.layout = Layout(list(self.view_of), [name for name, _, _ in self._views])
        row = {f: j for j, f in enumerate(self.layout.floats)}
        self._float_rows = [np.array([row[f] for f in feats if f in row], dtype=np.intp)
                            for _, feats, _ in self._views]

    def read(self, symbols: list[str], now: datetime | None = None,
             keep_expired: bool = False) -> OnlineRows:
        """Read ``symbols`` (a list of ``n``, duplicates allowed) from every view at ``now`` (UTC-aware;
        default the clock). Values of views that are not ``fresh`` come back null (``expired`` ones
        kept with ``keep_expired``). Raises ``ValueError`` for a naive ``now``."""
        now = _now(now)
        symbols = list(symbols)
        stamps, raw = self._reads.read(symbols)
        n, lay = len(symbols), self.layout
        # Every double feature of every view in one decode: (k features, n symbols).
        flat = [b for f in lay.floats for b in raw[f]]
        floats, float_null = doubles(flat)
        floats, float_null = floats.reshape(len(lay.floats), n), float_null.reshape(len(lay.floats), n)
        int_vals, int_null = integers([b for f in lay.ints for b in raw[f]])  # every int feature at once
        int_vals, int_null = int_vals.reshape(len(lay.ints), n), int_null.reshape(len(lay.ints), n)
        ints = {f: (int_vals[j], int_null[j]) for j, f in enumerate(lay.ints)}
        event_ts: dict[str, list] = {}
        status: dict[str, list] = {}
        usable = ("fresh", "expired") if keep_expired else ("fresh",)
        for (view, feats, ttl), ts_list, rows in zip(self._views, stamps, self._float_rows, strict=True):
            st = ["missing" if ts is None else "future" if ts > now
                  else "expired" if ttl is not None and now - ts > ttl else "fresh" for ts in ts_list]
            if any(s not in usable for s in st):
                hidden = np.fromiter((s not in usable for s in st), bool, n)
                float_null[rows] |= hidden
                for f in feats:
                    if f in ints:
                        ints[f][1][hidden] = True
            event_ts[view] = ts_list
            status[view] = st
        return OnlineRows(symbols, lay, floats, float_null, ints, event_ts, status, self.view_of)

    def frame(self, symbols: list[str], now: datetime | None = None,
              keep_expired: bool = False) -> pd.DataFrame:
        return self.read(symbols, now, keep_expired).to_pandas()


_READERS: dict[tuple, OnlineReader] = {}


def reader(profile=None, timeframe: str = DEFAULT_TIMEFRAME,
           features: str | list[str] = FEATURE_SERVICE) -> OnlineReader:
    """A cached :class:`OnlineReader` (one per profile, timeframe and feature set)."""
    prof = resolve(profile)
    key = (prof.name, prof.fingerprint, timeframe.upper(),
           features if isinstance(features, str) else tuple(features))
    if key not in _READERS:
        _READERS[key] = OnlineReader(prof, timeframe, features)
    return _READERS[key]


def online_features(symbols: list[str] | str, features: str | list[str] = FEATURE_SERVICE, *,
                    profile=None, timeframe: str = DEFAULT_TIMEFRAME, now: datetime | None = None,
                    keep_expired: bool = False, output: str = "pandas"):
    """The online features of ``symbols``: Feast's values plus per-view event timestamps and status.

    Returns one row per symbol: ``symbol``, the features (same values as Feast's
    ``get_online_features`` for fresh rows), ``<view>__event_timestamp`` (UTC), ``<view>__status``
    and ``status`` (the worst view). Expired, future and missing values are null (see module docs).
    ``output``: ``"pandas"`` (a DataFrame, the default), ``"polars"``, ``"dict"`` (column -> list,
    the cheapest) or ``"rows"`` (the :class:`OnlineRows` itself). The reader behind it is cached per
    profile, timeframe and feature set, so calling this in a loop costs one online-store round trip
    plus the output's construction. Raises ``ValueError`` for an unknown ``output`` or a naive ``now``;
    :class:`mt5lab.errors.StoreError` when the registry lacks the feature service.
    """
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
    if isinstance(symbols, str):
        symbols = [symbols]
    rows = reader(profile, timeframe, features).read(symbols, now, keep_expired)
    if output == "pandas":
        return rows.to_pandas()
    if output == "polars":
        return rows.to_polars()
    return rows.to_dict() if output == "dict" else rows


def clear_cache() -> None:
    _READERS.clear()
