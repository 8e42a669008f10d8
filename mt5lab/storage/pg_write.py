"""The PostgreSQL write path: bulk COPY where no row can collide, an upsert where one can.

All of it runs on the caller's cursor, inside the caller's one transaction (all or nothing).

1. Per symbol, the stored time range is looked up (two primary-key probes). A row before a
   symbol's first stored bar or after its last (the initial load, the daily append) cannot hit a
   stored key: those rows are COPYed (binary) straight into the table.
2. The other rows are COPYed into a temporary staging table. Staged rows equal to their stored row
   (``ROW(...) IS NOT DISTINCT FROM ROW(...)``, null-aware, ignoring ``keep`` =
   ``created_timestamp``) are dropped first, so unchanged rows are not even locked; the rest go in
   with ``INSERT ... ON CONFLICT (symbol, time) DO UPDATE ... WHERE ROW(stored) IS DISTINCT FROM
   ROW(new)``. An unchanged feature row therefore keeps its ``created_timestamp``: the semantics of
   :func:`mt5lab.storage.base.merge_upsert`.

A concurrent writer that ignores the store lock cannot corrupt anything: a collision in step 1 is a
primary-key violation, which rolls the whole write back.
"""

from __future__ import annotations

import polars as pl
from psycopg import sql

from mt5lab.errors import StoreError
from mt5lab.storage.base import WriteResult
from mt5lab.storage.pg_copy import copy_in

_KEY = ("symbol", "time")
_STAGE = sql.Identifier("mt5lab_stage")


def sorted_unique(frame: pl.DataFrame, what: str) -> pl.DataFrame:
    """``frame`` in key order (B-tree inserts then append at the right edge), refusing a duplicate
    key with a one-line StoreError before anything is sent. Input already in key order (the usual
    case) costs one pass of adjacent comparisons, no sort and no hash."""
    s, t = frame["symbol"], frame["time"]
    same_sym = s == s.shift(1)
    if not ((s > s.shift(1)) | (same_sym & (t >= t.shift(1)))).fill_null(True).all():
        frame = frame.sort(["symbol", "time"])
        s, t = frame["symbol"], frame["time"]
        same_sym = s == s.shift(1)
    dup = (same_sym & (t == t.shift(1))).fill_null(False)
    if dup.any():
        row = frame.row(int(dup.arg_max()), named=True)
        raise StoreError(f"{what}: duplicate key symbol={row['symbol']}, time={row['time']}; nothing stored")
    return frame


def write_table(cur, table: sql.Identifier, frame: pl.DataFrame, keep: str | None = None) -> WriteResult:
    """Upsert ``frame`` into ``table``: rows that cannot collide are COPYed in directly."""
    if frame.height == 0:
        return WriteResult(0, 0, 0)
    cur.execute(sql.SQL(
        "SELECT s.symbol, (SELECT min(time) FROM {t} WHERE symbol = s.symbol), "
        "(SELECT max(time) FROM {t} WHERE symbol = s.symbol) "
        "FROM unnest(%s::text[]) AS s(symbol)").format(t=table),
        (frame["symbol"].unique().to_list(),))
    stored = pl.DataFrame(cur.fetchall(), schema={"symbol": pl.String, "lo": pl.Datetime("us", "UTC"),
                                                  "hi": pl.Datetime("us", "UTC")}, orient="row")
    # A row before a symbol's first stored bar or after its last cannot hit a stored key.
    j = frame.join(stored, on="symbol", how="left")
    fresh = (j["lo"].is_null() | (j["time"] < j["lo"]) | (j["time"] > j["hi"])).to_numpy()
    if fresh.all():
        copy_in(cur, table, frame)
        return WriteResult(frame.height, 0, 0)
    if fresh.any():
        copy_in(cur, table, frame.filter(fresh))
    r = upsert(cur, table, frame.filter(~fresh), keep)
    return WriteResult(int(fresh.sum()) + r.inserted, r.updated, r.unchanged)

def upsert(cur, table: sql.Identifier, frame: pl.DataFrame, keep: str | None) -> WriteResult:
    """Stage; drop staged rows equal to their stored row (so unchanged rows are not even
    locked); then INSERT ... ON CONFLICT DO UPDATE, still guarded by IS DISTINCT FROM."""
    ident = sql.Identifier
    cols = frame.columns
    values = [c for c in cols if c not in _KEY]
    compared = [c for c in values if c != keep]
    row = lambda alias: sql.SQL("ROW({})").format(  # noqa: E731
        sql.SQL(", ").join(sql.SQL("{}.{}").format(sql.Identifier(alias), ident(c)) for c in compared))
    cur.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(_STAGE))
    cur.execute(sql.SQL("CREATE TEMP TABLE {} (LIKE {} INCLUDING DEFAULTS)").format(_STAGE, table))
    copy_in(cur, _STAGE, frame)
    cur.execute(sql.SQL("ANALYZE {}").format(_STAGE))
    cur.execute(sql.SQL("DELETE FROM {s} AS s USING {t} AS t WHERE t.symbol = s.symbol AND t.time = s.time "
                        "AND {old} IS NOT DISTINCT FROM {new}").format(
        s=_STAGE, t=table, old=row("t"), new=row("s")))
    unchanged = cur.rowcount
    cur.execute(sql.SQL("SELECT count(*) FROM {} s JOIN {} t USING (symbol, time)").format(_STAGE, table))
    existing = cur.fetchone()[0]
    cur.execute(sql.SQL(
        "INSERT INTO {t} AS t ({cols}) SELECT {cols} FROM {s} "
        "ON CONFLICT (symbol, time) DO UPDATE SET {sets} "
        "WHERE {old} IS DISTINCT FROM {new}").format(
        t=table, s=_STAGE, cols=sql.SQL(", ").join(map(ident, cols)),
        sets=sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(ident(c)) for c in values),
        old=row("t"), new=row("excluded")))
    changed = cur.rowcount
    cur.execute(sql.SQL("DROP TABLE {}").format(_STAGE))
    return WriteResult(changed - existing, existing, unchanged)
