"""Materialize's Redis fast path: Feast's own Redis layout, compared and written in one pipeline each.

Feast's Redis online store keeps one hash per entity: key ``serialize_entity_key(key) + project``,
one field per feature ``mmh3("<view>:<feature>")`` holding a serialized ``Value`` proto, and
``_ts:<view>`` holding the event time as a serialized ``Timestamp``. Its ``online_write_batch`` sends
one HSET per entity *per view*, after building every ``Value`` in Python; reading back for a
comparison costs as much again. Materialize knows the whole latest row of each symbol, so here:

- every key, field name and timestamp is made by Feast's own helpers (``_redis_key``, ``_mmh3``,
  ``_versioned_fv_name``, ``Timestamp``), on Feast's own client (``_get_client``) and config;
- the double features are encoded as one numpy block: a double ``Value`` is the tag byte ``0x29`` and
  the 8 little-endian bytes of the double (exactly what protobuf writes for a set ``oneof``
  member); int64 values and nulls go through the ``Value`` proto itself;
- one pipelined HMGET per symbol reads every field of the six views back, and a symbol is written
  (one HSET with all fields, like ``skip_dedup`` but all views at once) only if any byte differs.

The result is byte-for-byte what Feast writes (a test materializes with Feast, then checks that this
finds nothing to rewrite), so Feast's ``get_online_features`` and HTTP server read it unchanged.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from mt5lab.catalog import BY_NAME
from mt5lab.online.tables import entity_key

_DOUBLE_TAG = np.frombuffer(b"\x29", np.uint8)
_BULK_LEN = [b"$%d\r\n" % i for i in range(256)]


def _command(*args: bytes) -> bytes:
    """One RESP command (an array of bulk strings)."""
    return b"*%d\r\n" % len(args) + b"".join(_bulk_len(len(a)) + a + b"\r\n" for a in args)


def _bulk_len(n: int) -> bytes:
    """RESP's ``$<n>\\r\\n`` bulk-string header (the short ones prebuilt)."""
    return _BULK_LEN[n] if n < 256 else b"$%d\r\n" % n


def _double_block(rows: pl.DataFrame, names: list[str]) -> list[list[bytes]]:
    """Per column in ``names``, the serialized ``Value(double_val=x)`` per row; ``b""`` (an unset
    Value) for null or NaN. One numpy encode for the whole block."""
    n, k = rows.height, len(names)
    if not k:
        return []
    vals = rows.select(pl.col(names).cast(pl.Float64)).to_numpy().reshape(n, k)  # null -> NaN
    null = np.isnan(vals)
    mat = np.empty((k, n, 9), np.uint8)
    mat[:, :, 0] = _DOUBLE_TAG[0]
    mat[:, :, 1:] = np.ascontiguousarray(np.nan_to_num(vals.T), dtype="<f8").view(np.uint8).reshape(k, n, 8)
    raw = mat.tobytes()
    out = []
    for j, nulls in enumerate(null.T.tolist()):
        base = 9 * j * n
        col = [raw[at:at + 9] for at in range(base, base + 9 * n, 9)]
        out.append([b"" if z else v for v, z in zip(col, nulls, strict=True)] if any(nulls) else col)
    return out


def _int_values(col: pl.Series) -> list[bytes]:
    from feast.protos.feast.types.Value_pb2 import Value

    return [b"" if v is None else Value(int64_val=int(v)).SerializeToString() for v in col.to_list()]


class RedisRows:
    """Feast's Redis layout for ``views`` (``[(FeatureView, [feature names])]``) of a FeatureStore."""

    def __init__(self, fs, views):
        from feast.infra.online_stores.helpers import _mmh3, _redis_key
        from feast.infra.online_stores.redis import _versioned_fv_name

        cfg = fs.config
        self.config = cfg.online_store
        self.client = fs.provider.online_store._get_client(cfg.online_store)  # Feast's own client
        self._key = lambda ek: _redis_key(cfg.project, ek, entity_key_serialization_version=
                                          cfg.entity_key_serialization_version)
        self.layout = []  # (ts field, [(feature, field)]) per view
        for fv, feats in views:
            name = _versioned_fv_name(fv, cfg)
            self.layout.append((f"_ts:{name}".encode(), [(f, _mmh3(f"{name}:{f}")) for f in feats]))
        self.fields = [f for ts, feats in self.layout for f in (ts, *(k for _, k in feats))]
        self._field_resp = [_bulk_len(len(f)) + f + b"\r\n" for f in self.fields]  # RESP bulk strings
        self._keys: dict[str, bytes] = {}
        self._dump_ok: bool | None = None

    def encode(self, rows: pl.DataFrame) -> tuple[list[bytes], list[list[bytes]]]:
        """Redis keys and, per row, the field values in :attr:`fields` order."""
        from google.protobuf.timestamp_pb2 import Timestamp

        keys = [self.key(s) for s in rows["symbol"].to_list()]
        names = list(dict.fromkeys(f for _, feats in self.layout for f, _ in feats))
        doubles = [f for f in names if BY_NAME[f].dtype == "Float64"]
        cols: dict[str, list[bytes]] = dict(zip(doubles, _double_block(rows, doubles), strict=True))
        for f in names:
            if f not in cols:
                cols[f] = _int_values(rows[f])
        stamps = []
        for t in rows["event_timestamp"].to_list():
            ts = Timestamp()
            ts.FromDatetime(t)
            stamps.append(ts.SerializeToString())
        in_order = [c for _, feats in self.layout for c in (stamps, *(cols[f] for f, _ in feats))]
        return keys, [list(v) for v in zip(*in_order, strict=True)]

    def key(self, symbol: str) -> bytes:
        """The Redis key of ``symbol``'s hash (Feast's ``_redis_key``), cached."""
        k = self._keys.get(symbol)
        if k is None:
            if len(self._keys) > 100_000:
                self._keys.clear()
            k = self._keys[symbol] = self._key(entity_key(symbol))
        return k

    def differing(self, keys: list[bytes], values: list[list[bytes]]) -> np.ndarray:
        """Per key: does Redis hold anything but exactly these bytes in these fields?"""
        with self.client.pipeline(transaction=False) as pipe:
            for k in keys:
                pipe.hmget(k, self.fields)
            stored = pipe.execute()
        return np.array([old != new for old, new in zip(stored, values, strict=True)], dtype=bool)

    @property
    def can_swap(self) -> bool:
        """Whether :meth:`swap` works (a plain or sentinel client; a cluster client routes keys itself)."""
        return hasattr(self.client, "connection_pool")

    def _hsets(self, keys: list[bytes], values: list[list[bytes]]) -> tuple[list[bytes], int]:
        """RESP of one ``HSET key field value ...`` per key (and ``EXPIRE`` when the store has a
        ``key_ttl_seconds``), and the number of replies they get."""
        ttl = self.config.key_ttl_seconds
        head = b"*%d\r\n$4\r\nHSET\r\n" % (2 + 2 * len(self.fields))
        parts: list[bytes] = []
        add = parts.extend
        for k, vals in zip(keys, values, strict=True):
            add((head, _bulk_len(len(k)), k, b"\r\n"))
            for f, v in zip(self._field_resp, vals, strict=True):
                add((f, _bulk_len(len(v)), v, b"\r\n"))
            if ttl:
                parts.append(_command(b"EXPIRE", k, str(int(ttl)).encode()))
        return parts, len(keys) * (2 if ttl else 1)

    def _exchange(self, buf: bytes, replies: int, retry: bool) -> list:
        """Send ``buf`` on one pooled connection of Feast's client and read ``replies`` replies: one
        round trip. A command's error reply raises (the connection is then dropped, so no unread
        reply stays on a pooled one); a connection error retries once on a new connection if
        ``retry`` (only for idempotent buffers)."""
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        pool = self.client.connection_pool
        for attempt in (1, 2):
            conn = pool.get_connection()
            try:
                conn.send_packed_command([buf])
                return [conn.read_response() for _ in range(replies)]
            except (RedisConnectionError, RedisTimeoutError):
                conn.disconnect()
                if attempt == 2 or not retry:
                    raise
            except BaseException:
                conn.disconnect()
                raise
            finally:
                pool.release(conn)
        raise AssertionError("unreachable")  # pragma: no cover

    def write(self, keys: list[bytes], values: list[list[bytes]]) -> int:
        """Every key's fields in one round trip (:meth:`_hsets`, :meth:`_exchange`); retried once
        on a connection error (the writes are idempotent)."""
        if not keys:
            return 0
        if not self.can_swap:
            return self._write_pipeline(keys, values)
        parts, replies = self._hsets(keys, values)
        self._exchange(b"".join(parts), replies, retry=True)
        return len(keys)

    def _can_dump(self) -> bool:
        """Whether the server answers ``DUMP`` (some managed Redis services disable it); asked once."""
        if self._dump_ok is None:
            from redis.exceptions import ResponseError

            try:
                self._exchange(_command(b"DUMP", b"mt5lab:dump-probe"), 1, retry=True)
                self._dump_ok = True
            except ResponseError:
                self._dump_ok = False
        return self._dump_ok

    def swap(self, keys: list[bytes], values: list[list[bytes]]) -> tuple[str, list]:
        """:meth:`write`, returning what each key held before, read in the same buffer ahead of the
        writes: still one round trip. ``DUMP`` per key (one opaque blob each, cheap to read back;
        None: absent), or where the server refuses ``DUMP``, ``HMGET`` of :attr:`fields`. Not
        retried (a lost connection may have run the writes: the previous values would be lost)."""
        if not keys:
            return "dump", []
        if self._can_dump():
            kind, parts = "dump", [_command(b"DUMP", k) for k in keys]
        else:
            head = b"*%d\r\n$5\r\nHMGET\r\n" % (2 + len(self.fields))
            fields = b"".join(self._field_resp)
            kind, parts = "fields", [head + _bulk_len(len(k)) + k + b"\r\n" + fields for k in keys]
        writes, replies = self._hsets(keys, values)
        return kind, self._exchange(b"".join(parts + writes), len(keys) + replies, retry=False)[:len(keys)]

    def restore(self, keys: list[bytes], previous: tuple[str, list]) -> None:
        """Put back what :meth:`swap` returned, exactly: ``RESTORE ... REPLACE`` of each dumped key
        (then its ``EXPIRE`` if the store sets one), or each field as it was with absent fields
        deleted; a key that did not exist is deleted. One round trip, retried once (idempotent)."""
        kind, old_values = previous
        ttl = self.config.key_ttl_seconds
        parts: list[bytes] = []
        for k, old in zip(keys, old_values, strict=True):
            if kind == "dump":
                if old is None:
                    parts.append(_command(b"DEL", k))
                    continue
                parts.append(_command(b"RESTORE", k, b"0", old, b"REPLACE"))
                if ttl:
                    parts.append(_command(b"EXPIRE", k, str(int(ttl)).encode()))
                continue
            kept = [(f, v) for f, v in zip(self.fields, old, strict=True) if v is not None]
            gone = [f for f, v in zip(self.fields, old, strict=True) if v is None]
            if not kept:
                parts.append(_command(b"DEL", k))
                continue
            parts.append(_command(b"HSET", k, *(x for fv in kept for x in fv)))
            if gone:
                parts.append(_command(b"HDEL", k, *gone))
        if parts:
            self._exchange(b"".join(parts), len(parts), retry=True)

    def _write_pipeline(self, keys: list[bytes], values: list[list[bytes]]) -> int:
        ttl = self.config.key_ttl_seconds
        with self.client.pipeline(transaction=False) as pipe:
            for k, vals in zip(keys, values, strict=True):
                pipe.hset(k, mapping=dict(zip(self.fields, vals, strict=True)))
                if ttl:
                    pipe.expire(name=k, time=ttl)
            pipe.execute()
        return len(keys)
