"""The point-in-time join inside PostgreSQL, for entity frames much smaller than the feature table.

The entity keys go in by binary COPY into a temporary table; one ``LEFT JOIN LATERAL`` per entity
row finds its feature row with the symbol and that row's own time window pushed into the index
scan (primary key ``(symbol, time)``); the result comes back through ``COPY TO`` (no row-by-row
fetch), in input order. The predicate is Feast's: ``t - ttl <= event_timestamp <= t``, latest
``event_timestamp`` then latest ``created_timestamp``.

The extra ``time`` bounds only make the index usable (an ``OFFSET 0`` fence keeps the planner from
mixing in the ``event_timestamp`` index, which it does on a freshly loaded, unanalysed table): ``time <= event_timestamp`` (a bar is never
known before it opens) and ``event_timestamp = time + timeframe`` (mt5lab's availability rule,
:mod:`mt5lab.catalog`) put every candidate row at ``t - ttl - timeframe <= time <= t``.
PostgreSQL holds microseconds: entity times are floored to microseconds for the query (exact for
``<= t``) and the lower bound is re-checked at the entity's own precision afterwards.
"""

from __future__ import annotations

import polars as pl
from psycopg import sql

from mt5lab.catalog import TIMEFRAMES, check_timeframe, ttl
from mt5lab.errors import MaxLossExceeded, StoreError
from mt5lab.training.refs import Selection

LATERAL_MAX_ROWS = 300_000
"""Above this many entity rows the bulk read plus polars as-of join is faster."""

_KEYS = sql.Identifier("mt5lab_pit_keys")


def supports(store) -> bool:
    return getattr(store, "profile", None) == "postgres" and hasattr(store, "connect")


def point_in_time_sql(keys: pl.DataFrame, store, timeframe: str, selection: Selection) -> pl.DataFrame:
    """Like :func:`mt5lab.training.pit.point_in_time`, computed by the server (see the module docstring)."""
    from mt5lab.storage.pg_copy import copy_in, copy_out, select_list
    from mt5lab.storage.pg_schema import features_table

    tf = check_timeframe(timeframe)
    span, step = ttl(tf), TIMEFRAMES[tf]
    n = keys.height
    frame = keys.select(pl.int_range(n, dtype=pl.Int64).alias("row_id"), pl.col("symbol"),
                        pl.col("event_timestamp").dt.cast_time_unit("us").alias("t"))
    frame = frame.sort("symbol", "t")  # probes in index order: each symbol's pages are read once
    feats = [f.name for f in selection.features]
    dtypes = {f.name: (pl.Float64 if f.dtype == "Float64" else pl.Int64) for f in selection.features}
    out_schema = {"row_id": pl.Int64, "event_timestamp": pl.Datetime("us", "UTC")} | dtypes
    inner = sql.SQL(", ").join(sql.SQL("f.{}").format(sql.Identifier(c)) for c in ["event_timestamp", *feats])
    query = sql.SQL(
        "SELECT {out} FROM {keys} k LEFT JOIN LATERAL ("
        " SELECT {inner} FROM (SELECT * FROM {table} c"
        "  WHERE c.symbol = k.symbol AND c.time <= k.t AND c.time >= k.t - %(win)s OFFSET 0) f"
        " WHERE f.event_timestamp <= k.t AND f.event_timestamp >= k.t - %(ttl)s"
        " ORDER BY f.event_timestamp DESC, f.created_timestamp DESC LIMIT 1) f ON TRUE"
        " ORDER BY k.row_id").format(out=select_list(out_schema), keys=_KEYS, inner=inner,
                                     table=features_table(tf))
    try:
        with store.connect() as conn, conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE TEMP TABLE {} (row_id int8, symbol text COLLATE \"C\", "
                                "t timestamptz)").format(_KEYS))
            copy_in(cur, _KEYS, frame)
            cur.execute(sql.SQL("ANALYZE {}").format(_KEYS))
            cur.execute("SET jit = off")  # short per-row probes: compiling costs more than it saves
            got = copy_out(cur, query, {"win": span + step, "ttl": span}, out_schema)
    except StoreError:
        raise
    except Exception as exc:  # psycopg errors: one line, no connection string
        raise StoreError(f"{getattr(store, 'where', 'PostgreSQL')}: point-in-time query failed: "
                         f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if got.height != n or not got["row_id"].equals(pl.Series("row_id", range(n), dtype=pl.Int64)):
        raise MaxLossExceeded(f"point-in-time query returned {got.height} rows for {n} entity rows")
    t = keys["event_timestamp"]
    fts = got["event_timestamp"].dt.cast_time_unit(t.dtype.time_unit)
    ok = (fts >= t - span).fill_null(False)  # the lower bound at the entity's own precision
    return got.select(pl.when(pl.Series(ok)).then(pl.col(c)).alias(c) for c in feats)
