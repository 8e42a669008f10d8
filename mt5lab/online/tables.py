"""The online store through Feast's public ``OnlineStore`` interface: one read and one write per view.

Feast's ``FeatureStore.get_online_features`` resolves the feature service in the registry, builds
protos and response objects on every call; that costs milliseconds. mt5lab resolves the views once
(:class:`OnlineTables`) and then calls the provider's ``OnlineStore.online_read`` /
``online_write_batch`` directly: the same public methods Feast's own read and write paths end in,
the same keys and encodings, so Feast (and its HTTP server) reads what mt5lab writes and vice versa.
Nothing here touches SQLite keys itself.

Writes: Feast's Redis store skips a row whose event timestamp is not newer than the stored one. A
*revised* latest bar has the same event timestamp and different values, so mt5lab writes as Feast
does with ``skip_dedup`` (it only ever writes each symbol's newest offline row, under the store
lock, so out-of-order overwrites cannot happen): on Redis through
:class:`mt5lab.online.redis_rows.RedisRows` (Feast's bytes, keys and client; one pipeline for all
views), elsewhere through ``online_write_batch`` on a config copy with ``skip_dedup``. SQLite always
upserts.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import polars as pl

from mt5lab.catalog import BY_NAME, DEFAULT_TIMEFRAME, FEATURE_SERVICE, check_timeframe
from mt5lab.config import resolve
from mt5lab.errors import StoreError, _first_line, redis_where, translate
from mt5lab.feast_repo.store import feature_store

_CHECKED: set[int] = set()


def check_online(profile) -> None:
    """Fail fast, in one line, when the profile's Redis refuses us (once per process and server).

    redis-py retries a refused AUTH (an AuthenticationError is a ConnectionError) with backoff for
    ~15 s before Feast sees it; this PING uses the connection string exactly as Feast parses it, with
    no retries. Other online stores need no check.
    """
    cfg = profile.setting("online_store", default={}) or {}
    if cfg.get("type") != "redis" or cfg.get("redis_type", "redis") != "redis":
        return
    cs = str(cfg.get("connection_string", ""))
    if hash(cs) in _CHECKED:
        return
    from feast.infra.online_stores.redis import RedisOnlineStore
    from redis import Redis
    from redis.backoff import NoBackoff
    from redis.exceptions import RedisError
    from redis.retry import Retry

    nodes, kwargs = RedisOnlineStore._parse_connection_string(cs)  # Feast's own parser
    kwargs.setdefault("socket_connect_timeout", 5)
    client = Redis(host=nodes[0]["host"], port=int(nodes[0]["port"]), retry=Retry(NoBackoff(), 0),
                   **kwargs)
    try:
        client.ping()
    except RedisError as exc:
        raise (translate(exc, profile) or StoreError(f"{redis_where(profile)}: {_first_line(exc)}")) from None
    finally:
        client.close()
    _CHECKED.add(hash(cs))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def entity_key(symbol: str):
    """The Feast entity key proto of one symbol."""
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    return EntityKey(join_keys=["symbol"], entity_values=[Value(string_val=symbol)])


def to_python(value):
    """A Feast ``Value`` proto as a Python scalar (None when unset)."""
    kind = value.WhichOneof("val")
    if kind is None or kind == "null_val":
        return None
    return getattr(value, kind)


def to_proto(value, dtype: str):
    from feast.protos.feast.types.Value_pb2 import Value

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Value()
    return Value(double_val=float(value)) if dtype == "Float64" else Value(int64_val=int(value))


class OnlineTables:
    """The views of a feature service (or a list of ``view:feature`` refs), resolved once.

    ``views`` is a list of ``(FeatureView, [feature names])`` in the service's order. Holding one of
    these for the life of a process (a trading loop, a server) avoids every registry lookup.
    """

    def __init__(self, profile=None, timeframe: str = DEFAULT_TIMEFRAME,
                 features: str | list[str] = FEATURE_SERVICE):
        self.profile = resolve(profile)
        self.timeframe = check_timeframe(timeframe)
        check_online(self.profile)  # a refused password: one clear line now, not retries later
        fs = feature_store(self.profile, self.timeframe)
        self.feature_store = fs
        self.config = fs.config
        self.store = fs.provider.online_store
        try:
            if isinstance(features, str):
                service = fs.get_feature_service(features)
                wanted = [(p.name, [f.name for f in p.features]) for p in service.feature_view_projections]
            else:
                by_view: dict[str, list[str]] = {}
                for ref in features:
                    view, _, feat = ref.partition(":")
                    by_view.setdefault(view, []).append(feat)
                wanted = list(by_view.items())
            self.views = [(fs.get_feature_view(name), feats) for name, feats in wanted]
        except Exception as exc:  # FeatureServiceNotFound, FeatureViewNotFound, registry missing
            raise StoreError(f"feature registry of {self.profile.name!r} {self.timeframe} has no "
                             f"{features!r}: run `mt5lab apply --timeframe {self.timeframe}` first "
                             f"({type(exc).__name__})") from None
        self.feature_names = [f for _, feats in self.views for f in feats]
        self._keys: dict[str, object] = {}
        self._writer = None
        self._redis_rows = None

    def keys(self, symbols: list[str]) -> list:
        cache = self._keys
        out = []
        for s in symbols:
            k = cache.get(s)
            if k is None:
                k = cache[s] = entity_key(s)
            out.append(k)
        return out

    def read_view(self, i: int, keys: list) -> list[tuple[datetime | None, dict | None]]:
        """``online_read`` of view ``i``: per key ``(event_ts, {feature: Value})``; ``(None, None)``
        when absent (Redis answers an absent key with epoch 0 and unset values: normalised here)."""
        fv, feats = self.views[i]
        rows = self.store.online_read(self.config, fv, keys, list(feats))
        return [(None, None) if ts is None or ts == _EPOCH else (ts, vals) for ts, vals in rows]

    # -- writes --------------------------------------------------------------------------------
    def _write_target(self):
        if self._writer is None:
            cfg = self.config
            if getattr(cfg.online_store, "type", None) == "redis":
                from feast.infra.online_stores.helpers import get_online_store_from_config

                cfg = self.profile.repo_config(self.timeframe)
                cfg.online_store.skip_dedup = True
                self._writer = (cfg, get_online_store_from_config(cfg.online_store))
            else:
                self._writer = (cfg, self.store)
        return self._writer

    def _redis(self):
        """The Redis row writer (:class:`mt5lab.online.redis_rows.RedisRows`), None for other stores."""
        if self._redis_rows is None and getattr(self.config.online_store, "type", None) == "redis":
            from mt5lab.online.redis_rows import RedisRows

            self._redis_rows = RedisRows(self.feature_store, self.views)
        return self._redis_rows

    @property
    def can_swap(self) -> bool:
        """Whether :meth:`swap_latest` can undo its write (Redis, not a cluster client)."""
        rr = self._redis()
        return rr is not None and rr.can_swap

    def swap_latest(self, rows: pl.DataFrame):
        """:meth:`write_latest` (Redis only, see :attr:`can_swap`), returning ``(rows written,
        undo)``: ``undo()`` puts back exactly what those keys held before (one round trip)."""
        if rows.height == 0:
            return 0, lambda: None
        rr = self._redis()
        keys, values = rr.encode(rows)
        previous = rr.swap(keys, values)
        return len(keys), lambda: rr.restore(keys, previous)

    def write_latest(self, rows: pl.DataFrame) -> int:
        """Write feature rows (one per symbol: ``symbol``, ``event_timestamp``, ``created_timestamp``
        and the features) to every view. Null values are written as unset (Feast returns None).

        Redis: one pipeline for all rows and views, Feast's exact bytes
        (:class:`mt5lab.online.redis_rows.RedisRows`, what ``materialize`` writes): the same keys,
        fields and values as ``online_write_batch`` with ``skip_dedup``, one HSET per symbol instead
        of one per symbol and view."""
        if rows.height == 0:
            return 0
        rr = self._redis()
        if rr is not None:
            return rr.write(*rr.encode(rows))
        cfg, store = self._write_target()
        recs = rows.to_dicts()
        keys = self.keys([r["symbol"] for r in recs])
        for fv, feats in self.views:
            data = [
                (k, {f: to_proto(r[f], BY_NAME[f].dtype) for f in feats}, r["event_timestamp"],
                 r.get("created_timestamp"))
                for k, r in zip(keys, recs, strict=True)
            ]
            store.online_write_batch(cfg, fv, data, None)
        return len(recs)
