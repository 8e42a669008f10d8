"""One round trip per basket: the stored bytes of every view of a feature service, for many symbols.

Feast reads one view at a time (``OnlineStore.online_read`` per view; its Redis store sends one HMGET
per symbol per view, its SQLite store one query per view) and parses each value into a proto.
:class:`OnlineReader <mt5lab.online.reader.OnlineReader>` needs all six views of a symbol at once,
so here, per online store:

- **Redis**: one pipeline holding one HMGET per symbol that asks for every field of every view
  (the ``_ts:<view>`` fields and the features), with keys and field names made by Feast's own
  helpers (:class:`mt5lab.online.redis_rows.RedisRows`, the layout materialize writes). A single
  symbol is one HMGET, no pipeline.
- **SQLite**: one ``UNION ALL`` query over the views' tables on Feast's own connection, the same
  ``WHERE entity_key IN (...)`` Feast's ``online_read`` runs per table.
- any other store: Feast's ``online_read`` per view (correct, not fast).

Each returns the raw bytes (decoded by :mod:`mt5lab.online.decode`), so values are Feast's own
encoding, read unchanged. Equality with Feast's ``get_online_features`` is tested on both profiles.
"""

from __future__ import annotations

import os
import threading
import weakref
from datetime import datetime

from mt5lab.online.decode import Stamps
from mt5lab.online.tables import OnlineTables, entity_key

# (per view: event time per symbol, None when the view has no row) and (per feature: bytes per symbol)
Raw = tuple[list[list[datetime | None]], dict[str, list]]
_SQLITE_MAX_VARS = 30_000  # below SQLite's default SQLITE_MAX_VARIABLE_NUMBER (32,766)


class _FeastReads:
    """Feast's ``online_read`` per view (stores without a one-trip reader)."""

    def __init__(self, tables: OnlineTables):
        self.tables = tables

    def read(self, symbols: list[str]) -> Raw:
        keys = self.tables.keys(symbols)
        stamps, raw = [], {}
        for i, (_, feats) in enumerate(self.tables.views):
            rows = self.tables.read_view(i, keys)
            stamps.append([ts for ts, _ in rows])
            for f in feats:
                raw[f] = [None if vals is None or f not in vals else vals[f].SerializeToString()
                          for _, vals in rows]
        return stamps, raw


def _give_back(pool, kept: list) -> None:
    """Return a kept connection to its pool (this process's only; best effort at exit)."""
    if kept and kept[1] == os.getpid():
        try:
            pool.release(kept[0])
        except Exception:  # interpreter shutdown: the socket closes with the process
            pass
        kept.clear()


class _RedisReads:
    """One pipelined HMGET per symbol for every field of every view (Feast's layout).

    Each symbol's ``HMGET key field...`` command is packed once (RESP bytes, by redis-py's own
    ``Connection.pack_command``) and cached, so a basket read is one ``sendall`` of the joined
    commands and one reply per symbol read back on the same connection (hiredis parses them): one
    round trip, no per-call command packing. The main thread keeps one connection of Feast's pool
    (:meth:`_connection`). A connection error drops the connection and retries once on a new one (a
    read has no side effects); any other error drops the connection too, so no unread reply is left
    on it.
    """

    def __init__(self, tables: OnlineTables):
        from mt5lab.online.redis_rows import RedisRows

        self.rows = RedisRows(tables.feature_store, tables.views)
        self.client = self.rows.client
        self.fields = self.rows.fields
        self.ts_at: list[int] = []
        self.feature_at: list[tuple[str, int]] = []
        pos = 0
        for _, feats in self.rows.layout:
            self.ts_at.append(pos)
            self.feature_at.extend((f, pos + 1 + j) for j, (f, _) in enumerate(feats))
            pos += 1 + len(feats)
        self._packed: dict[str, bytes] = {}
        self._stamps = Stamps()
        self._kept: list = []  # [connection, pid] of the main thread (see _connection)
        # Given back to the pool when this reader goes (a new profile, clear_cache()).
        weakref.finalize(self, _give_back, self.client.connection_pool, self._kept)

    def packed(self, symbol: str, conn) -> bytes:
        p = self._packed.get(symbol)
        if p is None:
            if len(self._packed) > 100_000:
                self._packed.clear()
            key = self.rows._key(entity_key(symbol))
            p = conn.pack_command("HMGET", key, *self.fields)  # bytes, or a list of them
            p = self._packed[symbol] = p if isinstance(p, bytes) else b"".join(p)
        return p

    def _connection(self):
        """``(connection, kept)``. The main thread keeps one connection of Feast's pool, taken once
        per process (a forked child never uses its parent's socket), so a hot loop skips the pool's
        checkout: a lock, counters and a non-blocking ``recv`` probing the socket for stray data,
        which cost as much as the read's own round trip. Other threads check one out per read and
        give it back: threads come and go (a server's worker pool ends idle ones), and a connection
        kept per thread would stay checked out after its thread ended."""
        pool = self.client.connection_pool
        if threading.current_thread() is not threading.main_thread():
            return pool.get_connection(), False
        kept = self._kept
        if not kept or kept[1] != os.getpid():
            kept[:] = [pool.get_connection(), os.getpid()]
        return kept[0], True

    def _exchange(self, symbols: list[str]) -> list:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        pool = self.client.connection_pool
        for attempt in (1, 2):
            conn, kept = self._connection()
            try:
                conn.send_packed_command([b"".join([self.packed(s, conn) for s in symbols])])
                return [conn.read_response() for _ in symbols]
            except (RedisConnectionError, RedisTimeoutError):
                self._drop(conn, kept)
                if attempt == 2:
                    raise
            except BaseException:  # an error reply or an interrupt: no unread reply may stay behind
                self._drop(conn, kept)
                raise
            finally:
                if not kept:
                    pool.release(conn)
        raise AssertionError("unreachable")  # pragma: no cover

    def _drop(self, conn, kept: bool) -> None:
        """Close ``conn``; the main thread's kept one is given back (the next read takes another)."""
        conn.disconnect()
        if kept:
            self._kept.clear()
            self.client.connection_pool.release(conn)

    def read(self, symbols: list[str]) -> Raw:
        replies = self._exchange(symbols)
        conv = self._stamps.redis
        stamps = [[conv(r[at]) for r in replies] for at in self.ts_at]
        raw = {f: [r[at] for r in replies] for f, at in self.feature_at}
        return stamps, raw


class _SqliteReads:
    """One ``UNION ALL`` query over the views' tables, on Feast's own SQLite connection."""

    def __init__(self, tables: OnlineTables):
        from feast.infra.key_encoding_utils import serialize_entity_key
        from feast.infra.online_stores.sqlite import _quote_id, _table_id

        cfg = tables.config
        versioned = getattr(cfg.registry, "enable_online_feature_view_versioning", False)
        self.tables = tables
        self.names = [_quote_id(_table_id(cfg.project, fv, versioned)) for fv, _ in tables.views]
        self.feats = [set(feats) for _, feats in tables.views]
        self.all_feats = [f for _, feats in tables.views for f in feats]
        self._serialize = lambda s: serialize_entity_key(
            entity_key(s), entity_key_serialization_version=cfg.entity_key_serialization_version)
        self._keys: dict[str, bytes] = {}
        self._sql: dict[int, str] = {}
        self._stamps = Stamps()

    def key(self, symbol: str) -> bytes:
        k = self._keys.get(symbol)
        if k is None:
            if len(self._keys) > 100_000:
                self._keys.clear()
            k = self._keys[symbol] = self._serialize(symbol)
        return k

    def sql(self, n: int) -> str:
        q = self._sql.get(n)
        if q is None:
            marks = ",".join("?" * n)
            # Table names are Feast's, quoted by Feast's _quote_id; symbols are bound parameters. event_ts
            # as its stored text: Feast's connection would convert it once per feature row.
            q = " UNION ALL ".join(
                f"SELECT {i}, entity_key, feature_name, value, CAST(event_ts AS TEXT) FROM {name} "  # noqa: S608
                f"WHERE entity_key IN ({marks})" for i, name in enumerate(self.names))
            if len(self._sql) > 64:
                self._sql.clear()
            self._sql[n] = q
        return q

    def read(self, symbols: list[str]) -> Raw:
        n_views = len(self.names)
        stamps: list[list] = [[None] * len(symbols) for _ in range(n_views)]
        raw: dict[str, list] = {f: [None] * len(symbols) for f in self.all_feats}
        where: dict[bytes, list[int]] = {}
        for i, s in enumerate(symbols):
            where.setdefault(self.key(s), []).append(i)
        keys = list(where)
        conn = self.tables.store._get_conn(self.tables.config)  # Feast's own connection
        conv = self._stamps.sqlite
        step = max(1, _SQLITE_MAX_VARS // max(1, n_views))
        for lo in range(0, len(keys), step):
            chunk = keys[lo:lo + step]
            for view, key, name, value, ts in conn.execute(self.sql(len(chunk)), chunk * n_views):
                if name not in self.feats[view]:
                    continue
                t = conv(ts)
                for i in where[key]:
                    stamps[view][i] = t
                    raw[name][i] = value
        return stamps, raw


def reads_for(tables: OnlineTables):
    """The one-trip reader of the tables' online store (Redis, SQLite), else Feast's per view."""
    kind = getattr(tables.config.online_store, "type", None)
    if kind == "redis" and getattr(tables.config.online_store, "redis_type", "redis") == "redis":
        return _RedisReads(tables)
    if kind == "sqlite" and type(tables.store).__name__ == "SqliteOnlineStore":
        return _SqliteReads(tables)
    return _FeastReads(tables)
