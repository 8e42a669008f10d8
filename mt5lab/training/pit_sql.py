"""The point-in-time join inside PostgreSQL: one primary-key probe per entity row, results back as
a few thousand binary arrays instead of a million rows.

The entity keys go in by binary COPY into a temporary table; per entity row, one backward probe of
the primary key ``(symbol, time)`` finds its feature row (``LEFT JOIN LATERAL ... ORDER BY time
DESC LIMIT 1``); the rows are aggregated into arrays of :data:`GROUP_ROWS` entity rows each (feature
values, a null bitmask, the row's times), sent with binary ``COPY TO`` and read with numpy, never
row by row in Python (psycopg costs ~2 us per COPY message; PostgreSQL sends one per row). Frames
of :data:`PARALLEL_MIN_ROWS` rows or more are split over :data:`CONNECTIONS` connections in threads
(the server works on each half in its own backend).

The answer is Feast's: the feature row with the largest ``event_timestamp <= t``, kept only if
``event_timestamp >= t - ttl``. The probe orders by ``time`` instead, which is the same order by
mt5lab's availability rule ``event_timestamp = time + timeframe`` (:mod:`mt5lab.catalog`; every
feature row mt5lab writes obeys it, and ``(symbol, time)`` is unique, so there are no ties to break
by ``created_timestamp``): ``event_timestamp <= t`` is ``time <= t - timeframe``. Every matched row
is checked against the rule; if one breaks it, the join is redone by :func:`point_in_time_exact`
(Feast's ordering literally, every candidate row of the ttl window fetched). PostgreSQL holds
microseconds: entity times are floored to microseconds for the query (exact for ``<= t``), and the
lower bound is checked at the entity's own precision afterwards.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import lru_cache

import numpy as np
import polars as pl
from psycopg import sql

from mt5lab.catalog import TIMEFRAMES, check_timeframe, ttl
from mt5lab.errors import MaxLossExceeded, StoreError
from mt5lab.training.refs import Selection

LATERAL_MAX_ROWS = 2**31 - 1
"""Frames up to this many entity rows are joined by the server (all of them: the bulk read plus
polars as-of join of :mod:`mt5lab.training.pit` reads every feature row in the window instead)."""
GROUP_ROWS = 2048
"""Entity rows per result row (per array): large enough that per-row costs vanish, small enough
for the server's per-group aggregation memory (~1 MB)."""
PARALLEL_MIN_ROWS = 50_000
"""From this many entity rows on, :data:`CONNECTIONS` connections share the work."""
CONNECTIONS = 2

_KEYS = sql.Identifier("mt5lab_pit_keys")
_PG_EPOCH_US = 946_684_800 * 1_000_000  # 2000-01-01 in Unix microseconds
_NO_ROW = np.iinfo(np.int64).min  # '-infinity'::timestamptz in binary
_US = timedelta(microseconds=1)


def supports(store) -> bool:
    return getattr(store, "profile", None) == "postgres" and hasattr(store, "connect")


def _fail(store, exc: Exception) -> StoreError:
    """psycopg errors as one line, without the connection string."""
    return StoreError(f"{getattr(store, 'where', 'PostgreSQL')}: point-in-time query failed: "
                      f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")


@lru_cache(maxsize=64)
def _query(timeframe: str, floats: tuple[str, ...], ints: tuple[str, ...]) -> sql.Composable:
    """The join of one part (composed once per selection: composing costs ~0.1 s)."""
    from mt5lab.storage.pg_schema import features_table

    table = features_table(timeframe)
    floats, ints = list(floats), list(ints)
    ident = sql.Identifier
    names = floats + ints
    cols = sql.SQL(", ").join(sql.SQL("c.{}").format(ident(c)) for c in names)
    fcol = lambda c: sql.SQL("f.{}").format(ident(c))  # noqa: E731
    # bit i set where column i is null; distinct powers of two, so + is |, and a CASE per column
    # costs one operator call where (x IS NULL)::int4::int8 << i cost four (~6% of the query)
    mask = sql.SQL(" + ").join(sql.SQL("CASE WHEN f.{} IS NULL THEN {}::int8 ELSE 0::int8 END").format(
        ident(c), sql.Literal(1 << i)) for i, c in enumerate(names))
    aggs = [sql.SQL("array_agg(k.pos)"), sql.SQL("array_agg(coalesce(f.event_timestamp, '-infinity'))"),
            sql.SQL("array_agg(coalesce(f.time, '-infinity'))"),
            sql.SQL("array_agg(CASE WHEN num_nulls({}) = 0 THEN 0::int8 ELSE {} END)").format(
                sql.SQL(", ").join(map(fcol, names)), mask)]
    for group, typ in ((floats, "float8"), (ints, "int8")):
        if group:
            aggs.append(sql.SQL("array_agg(ARRAY[{}]::{}[])").format(
                sql.SQL(", ").join(sql.SQL("coalesce(f.{}, 0)").format(ident(c)) for c in group), sql.SQL(typ)))
    return sql.SQL(
        "SELECT k.grp, {aggs} FROM (SELECT * FROM {keys} ORDER BY grp, pos) k LEFT JOIN LATERAL ("
        " SELECT c.time, c.event_timestamp, {cols} FROM {table} c"
        " WHERE c.symbol = k.symbol AND c.time <= k.t - %(step)s AND c.time >= k.t - %(win)s"
        " ORDER BY c.time DESC LIMIT 1) f ON TRUE GROUP BY k.grp").format(
        aggs=sql.SQL(", ").join(aggs), keys=_KEYS, cols=cols, table=table)


def _run_part(store, frame: pl.DataFrame, query, params: dict, out: dict, rows_of: np.ndarray) -> None:
    """Join the entity rows of ``frame`` (``grp, pos, symbol, t``) on one connection; scatter the
    arrays into ``out`` at the entity rows ``rows_of[pos]`` (feature matrices ``(columns, rows)``:
    each output column contiguous in entity order, no permutation pass afterwards)."""
    from mt5lab.storage.pg_copy import binary_array, binary_tuples, copy_in

    with store.connect() as conn, conn.cursor() as cur, conn.transaction():
        cur.execute(sql.SQL("CREATE TEMP TABLE {} (grp int8, pos int8, symbol text COLLATE \"C\", "
                            "t timestamptz) ON COMMIT DROP").format(_KEYS))
        copy_in(cur, _KEYS, frame)
        cur.execute(sql.SQL("ANALYZE {}").format(_KEYS))
        cur.execute("SET LOCAL jit = off")  # short per-row probes: compiling costs more than it saves
        cur.execute("SET LOCAL work_mem = '256MB'")  # the keys' sort stays in memory
        cur.execute("SET LOCAL enable_hashagg = off")  # stream groups, never hold them all
        cur.execute("SET LOCAL enable_memoize = off")  # (symbol, t) hardly ever repeats
        with cur.copy(sql.SQL("COPY ({}) TO STDOUT (FORMAT binary)").format(query), params) as cp:
            for fields in binary_tuples(cp):
                rows = rows_of[binary_array(fields[1], 8, ">i8")[0]]
                out["seen"][rows] += 1
                for name, i in (("fts", 2), ("ftime", 3), ("mask", 4)):
                    out[name][rows] = binary_array(fields[i], 8, ">i8")[0]
                i = 5
                for name, dtype in (("f", ">f8"), ("i", ">i8")):
                    width = out[name].shape[0]
                    if width:
                        out[name][:, rows] = binary_array(fields[i], 8, dtype)[0].reshape(-1, width).T
                        i += 1


def _probe_order(symbol: pl.Series, t_us: pl.Series) -> np.ndarray:
    """Entity rows ordered by (symbol, time), int64: the probes then walk the primary key forward.
    Any such order is correct (results go back by position); one sort of an integer key ``symbol
    code * width + time`` where it fits in 62 bits (3x faster than sorting the strings)."""
    uniq = symbol.unique().sort()
    us = t_us.dt.epoch("us")
    lo, hi = us.min(), us.max()
    width = (hi - lo + 1) if lo is not None else 1
    if width * max(uniq.len(), 1) >= 2**62:  # pragma: no cover - centuries of microseconds
        frame = pl.DataFrame({"s": symbol, "t": t_us}).with_row_index("i").sort("s", "t")
        return frame["i"].to_numpy().astype(np.int64)
    code = symbol.replace_strict(uniq, pl.int_range(uniq.len(), dtype=pl.Int64, eager=True),
                                 return_dtype=pl.Int64)
    return (code * width + (us - lo)).arg_sort().to_numpy().astype(np.int64)


def point_in_time_sql(keys: pl.DataFrame, store, timeframe: str, selection: Selection) -> pl.DataFrame:
    """Like :func:`mt5lab.training.pit.point_in_time`, computed by the server (see the module
    docstring). Raises :class:`StoreError` (one line) for a server error, :class:`MaxLossExceeded`
    if a row went missing."""
    tf = check_timeframe(timeframe)
    span, step = ttl(tf), TIMEFRAMES[tf]
    n = keys.height
    feats = selection.features
    if len(feats) > 63:
        return point_in_time_exact(keys, store, tf, selection)
    floats = [f.name for f in feats if f.dtype == "Float64"]
    ints = [f.name for f in feats if f.dtype != "Float64"]
    t_us = keys["event_timestamp"].dt.cast_time_unit("us")
    perm = _probe_order(keys["symbol"], t_us)  # sorted position -> entity row
    pos = np.arange(n, dtype=np.int64)
    frame = pl.DataFrame({"grp": pos // GROUP_ROWS, "pos": pos, "symbol": keys["symbol"].gather(perm),
                          "t": t_us.gather(perm)})
    out = {"seen": np.zeros(n, np.int8), "fts": np.empty(n, np.int64), "ftime": np.empty(n, np.int64),
           "mask": np.empty(n, np.int64), "f": np.empty((len(floats), n)), "i": np.empty((len(ints), n), np.int64)}
    query = _query(tf, tuple(floats), tuple(ints))
    params = {"step": step, "win": span + step}
    parts = CONNECTIONS if n >= PARALLEL_MIN_ROWS else 1
    groups = -(-n // GROUP_ROWS)
    cuts = [min(n, (groups * i // parts) * GROUP_ROWS) for i in range(parts + 1)]
    try:
        with ThreadPoolExecutor(parts) as pool:
            futures = [pool.submit(_run_part, store, frame.slice(a, b - a), query, params, out, perm)
                       for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b > a]
            for f in futures:
                f.result()
    except StoreError:
        raise
    except Exception as exc:  # psycopg errors
        raise _fail(store, exc) from None
    if not (out["seen"] == 1).all():
        raise MaxLossExceeded(f"point-in-time query returned {int(out['seen'].sum())} rows for {n} entity rows")
    found = out["fts"] != _NO_ROW
    if (out["fts"][found] != out["ftime"][found] + step // _US).any():
        return point_in_time_exact(keys, store, tf, selection)  # a row breaks the availability rule
    t = keys["event_timestamp"]
    per_us = 1000 if t.dtype.time_unit == "ns" else 1  # the lower bound at the entity's precision
    lt = t.dt.epoch("ns" if per_us == 1000 else "us").to_numpy()
    fts = np.where(found, out["fts"], 0) + _PG_EPOCH_US
    ok = found & (fts * per_us >= lt - span // _US * per_us)
    mask = out["mask"]
    cols, nulls = {}, {}
    for j, name in enumerate(floats + ints):
        cols[name] = out["f"][j] if j < len(floats) else out["i"][j - len(floats)]
        nulls[f"__null{j}"] = ~ok | ((mask >> j) & 1).astype(bool)
    got = pl.DataFrame(cols | nulls)
    return got.select(pl.when(~pl.col(f"__null{j}")).then(pl.col(name)).alias(name)
                      for j, name in enumerate(floats + ints)).select([f.name for f in feats])


def point_in_time_exact(keys: pl.DataFrame, store, timeframe: str, selection: Selection) -> pl.DataFrame:
    """Feast's ordering literally (``event_timestamp DESC, created_timestamp DESC`` among every row
    of the ttl window), for a table where a row breaks the availability rule. One connection, CSV
    out: slower, never wrong."""
    from mt5lab.storage.pg_copy import copy_in, copy_out, select_list
    from mt5lab.storage.pg_schema import features_table

    tf = check_timeframe(timeframe)
    span = ttl(tf)
    n = keys.height
    frame = keys.select(pl.int_range(n, dtype=pl.Int64).alias("row_id"), pl.col("symbol"),
                        pl.col("event_timestamp").dt.cast_time_unit("us").alias("t"))
    feats = [f.name for f in selection.features]
    dtypes = {f.name: (pl.Float64 if f.dtype == "Float64" else pl.Int64) for f in selection.features}
    out_schema = {"row_id": pl.Int64, "event_timestamp": pl.Datetime("us", "UTC")} | dtypes
    inner = sql.SQL(", ").join(sql.SQL("f.{}").format(sql.Identifier(c)) for c in ["event_timestamp", *feats])
    query = sql.SQL(
        "SELECT {out} FROM {keys} k LEFT JOIN LATERAL ("
        " SELECT {inner} FROM {table} f WHERE f.symbol = k.symbol"
        " AND f.event_timestamp <= k.t AND f.event_timestamp >= k.t - %(ttl)s"
        " ORDER BY f.event_timestamp DESC, f.created_timestamp DESC LIMIT 1) f ON TRUE"
        " ORDER BY k.row_id").format(out=select_list(out_schema), keys=_KEYS, inner=inner,
                                     table=features_table(tf))
    try:
        with store.connect() as conn, conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE TEMP TABLE {} (row_id int8, symbol text COLLATE \"C\", "
                                "t timestamptz)").format(_KEYS))
            copy_in(cur, _KEYS, frame)
            cur.execute(sql.SQL("ANALYZE {}").format(_KEYS))
            got = copy_out(cur, query, {"ttl": span}, out_schema)
    except StoreError:
        raise
    except Exception as exc:  # psycopg errors: one line, no connection string
        raise _fail(store, exc) from None
    if got.height != n or not got["row_id"].equals(pl.Series("row_id", range(n), dtype=pl.Int64)):
        raise MaxLossExceeded(f"point-in-time query returned {got.height} rows for {n} entity rows")
    t = keys["event_timestamp"]
    fts = got["event_timestamp"].dt.cast_time_unit(t.dtype.time_unit)
    ok = (fts >= t - span).fill_null(False)  # the lower bound at the entity's own precision
    return got.select(pl.when(pl.Series(ok)).then(pl.col(c)).alias(c) for c in feats)
