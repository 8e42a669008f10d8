"""The point-in-time join: Feast's ``get_historical_features`` semantics as one polars as-of join.

For an entity row ``(symbol, t)`` and a feature view with ``ttl``, the value is taken from the
feature row of that symbol with the largest ``event_timestamp`` such that

    t - ttl <= event_timestamp <= t

(both ends inclusive, exactly as Feast 0.67's file/dask store (``_filter_ttl``) and its Postgres
store (``... >= entity_timestamp - ttl * interval '1' second``) compare), ties on
``event_timestamp`` broken by the larger ``created_timestamp``; no such row gives nulls.

Look-ahead: ``event_timestamp`` is the bar's *close* (:mod:`mt5lab.catalog`), so ``<= t`` admits only
bars closed by ``t``. The join never looks at rows after ``t``: the as-of search is ``backward``.

How: one read of the key columns (symbol and time bounds pushed down to the store: a Parquet scan
filter or SQL ``WHERE``), one as-of join (``by=symbol``) giving, per entity row, the position of its
feature row, then the feature columns are read a few views at a time and gathered at those
positions, so peak memory is the keys plus one batch of columns, not the whole table. The row count
is checked after every step: a join that changed it raises :class:`MaxLossExceeded`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

from mt5lab.catalog import check_timeframe, ttl
from mt5lab.errors import MaxLossExceeded, StoreError
from mt5lab.progress import bar
from mt5lab.refs import Selection

BATCH_BYTES = 320 * 2**20
"""Feature columns read per store call: about this many bytes of values (8 per row and column)."""

_T, _SYM, _ROW, _FTS, _RIDX = "event_timestamp", "symbol", "__row", "__fts", "__ridx"


def _dtype(f) -> pl.DataType:
    return pl.Float64() if f.dtype == "Float64" else pl.Int64()


def _empty(selection: Selection, n: int = 0) -> pl.DataFrame:
    return pl.DataFrame([pl.Series(f.name, [None] * n, dtype=_dtype(f)) for f in selection.features])


def _bounds(keys: pl.DataFrame, span: timedelta) -> tuple[list[str], datetime, datetime]:
    """Symbols and the ``[min(t) - ttl, max(t)]`` window to push down (whole microseconds: the
    store's timestamps are microseconds, so flooring both ends keeps every candidate row)."""
    t = keys[_T]
    lo, hi = t.min(), t.max()
    return sorted(keys[_SYM].unique().to_list()), lo - span, hi


def _keys_of_store(store, tf: str, symbols, start, end) -> tuple[pl.DataFrame, int]:
    """The store's key columns with each row's position in the store's (deterministic) order, and
    the number of rows read."""
    k = store.read_features(tf, symbols, start, end,
                            columns=[_SYM, _T, "created_timestamp"]).with_row_index(_RIDX)
    raw = k.height
    k = k.filter(pl.col(_T).is_not_null())
    sym, ts = k[_SYM], k[_T]
    same = (sym == sym.shift(1)).fill_null(False)
    unsorted = (same & (ts < ts.shift(1)).fill_null(False)).any()
    dup = (same & (ts == ts.shift(1)).fill_null(False)).any()
    if unsorted or dup:  # not the stores' contract, but cheap to honour: Feast's tie rule
        k = (k.sort([_SYM, _T, "created_timestamp", _RIDX], nulls_last=False)
             .unique([_SYM, _T], keep="last", maintain_order=True))
    return k.select(pl.col(_SYM), pl.col(_T).alias(_FTS), pl.col(_RIDX)), raw


def match_rows(keys: pl.DataFrame, store_keys: pl.DataFrame, span: timedelta) -> pl.DataFrame:
    """Per entity row (input order): ``idx``, the store row position of its point-in-time match (or
    null), and ``fts``, that row's ``event_timestamp``.

    ``keys``: ``symbol``, ``event_timestamp`` (tz-aware). ``store_keys``: ``symbol``, ``__fts``,
    ``__ridx``, sorted by time within each symbol.
    """
    n = keys.height
    left = keys.select(_SYM, _T).with_row_index(_ROW)
    unit = left.schema[_T].time_unit
    right = store_keys
    if unit == "ns":  # compare at the entity's precision: never round an entity time
        right = right.with_columns(pl.col(_FTS).dt.cast_time_unit("ns"))
    else:
        left = left.with_columns(pl.col(_T).dt.cast_time_unit("us"))
        right = right.with_columns(pl.col(_FTS).dt.cast_time_unit("us"))
    left = left.with_columns(pl.col(_SYM).cast(pl.String)).sort(_T)
    right = right.with_columns(pl.col(_SYM).cast(pl.String))
    j = left.join_asof(right, left_on=_T, right_on=_FTS, by=_SYM, strategy="backward",
                       check_sortedness=False)
    if j.height != n:
        raise MaxLossExceeded(f"as-of join returned {j.height} rows for {n} entity rows")
    ok = pl.col(_FTS) >= pl.col(_T) - span
    j = j.select(_ROW, pl.when(ok).then(pl.col(_RIDX)).alias("idx"),
                 pl.when(ok).then(pl.col(_FTS)).alias("fts"))
    out = j.sort(_ROW).drop(_ROW)
    if out.height != n:
        raise MaxLossExceeded(f"point-in-time join returned {out.height} rows for {n} entity rows")
    return out


def _batches(selection: Selection, rows: int) -> list[list]:
    """Views packed into batches of about :data:`BATCH_BYTES` of feature values."""
    per_col = max(rows, 1) * 8
    out, cur, size = [], [], 0
    for _, feats in selection.by_view:
        if cur and size + per_col * len(feats) > BATCH_BYTES:
            out.append(cur)
            cur, size = [], 0
        cur.extend(feats)
        size += per_col * len(feats)
    if cur:
        out.append(cur)
    return out


def point_in_time(keys: pl.DataFrame, store, timeframe: str, selection: Selection,
                  progress: bool = True) -> pl.DataFrame:
    """The selected features of every entity row, in input order, with the catalog dtypes.

    ``keys``: polars ``symbol`` (String) and ``event_timestamp`` (tz-aware UTC), no nulls. All the
    catalog's views of a timeframe share one source table and one ``ttl``
    (:func:`mt5lab.catalog.ttl`), so one as-of match serves every view.
    """
    tf = check_timeframe(timeframe)
    n = keys.height
    if n == 0:
        return _empty(selection)
    span = ttl(tf)
    symbols, start, end = _bounds(keys, span)
    skeys, raw = _keys_of_store(store, tf, symbols, start, end)
    if skeys.height == 0:
        return _empty(selection, n)
    m = match_rows(keys, skeys, span)
    idx, fts = m["idx"], m["fts"].dt.cast_time_unit("us")
    parts: list[pl.DataFrame] = []
    batches = _batches(selection, raw)
    for feats in bar(batches, f"training set {tf}", "batch", progress and len(batches) > 1):
        names = [f.name for f in feats]
        cols = store.read_features(tf, symbols, start, end, columns=[_SYM, _T, *names])
        got = cols[_T].gather(idx).dt.cast_time_unit("us") if cols.height == raw else None
        if got is None or not ((got == fts) | (got.is_null() & fts.is_null())).fill_null(False).all():
            raise StoreError("the offline store changed between reads of one training set (rows moved); "
                             "retry when no build or ingest is running")
        part = cols.select(pl.col(c).gather(idx).cast(_dtype(f)) for c, f in zip(names, feats, strict=True))
        if part.height != n:
            raise MaxLossExceeded(f"gather returned {part.height} rows for {n} entity rows")
        parts.append(part)
    out = pl.concat(parts, how="horizontal")
    return out.select(selection_names(selection))


def selection_names(selection: Selection) -> list[str]:
    return [f.name for f in selection.features]
