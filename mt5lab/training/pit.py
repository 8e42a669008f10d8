"""The point-in-time join: Feast's ``get_historical_features`` semantics as one polars as-of join.

For an entity row ``(symbol, t)`` and a feature view with ``ttl``, the value is taken from the
feature row of that symbol with the largest ``event_timestamp`` such that

    t - ttl <= event_timestamp <= t

(both ends inclusive, exactly as Feast 0.67's file/dask store (``_filter_ttl``) and its Postgres
store (``... >= entity_timestamp - ttl * interval '1' second``) compare), ties on
``event_timestamp`` broken by the larger ``created_timestamp``; no such row gives nulls.

Look-ahead: ``event_timestamp`` is the bar's *close* (:mod:`mt5lab.catalog`), so ``<= t`` admits only
bars closed by ``t``. The join never looks at rows after ``t``: the as-of search is ``backward``.

How (any store): one read of the key columns with the symbols and ``[min(t) - ttl, max(t)]`` pushed
down (a Parquet scan filter, or SQL ``WHERE``); a backward as-of search per symbol (one
``numpy.searchsorted`` over ``symbol code * width + time``, no sort of the store) giving each entity
row the position of its feature row; then the feature columns are read a few views at a time and
gathered at those positions (in ascending order, then permuted back), so peak memory is the keys
plus one batch of columns, not the whole table. On PostgreSQL the server joins instead, one
primary-key probe per entity row (:mod:`mt5lab.training.pit_sql`; this bulk path only above
:data:`mt5lab.training.pit_sql.LATERAL_MAX_ROWS` rows). On the local profile the join reads a
memory-mapped mirror of the feature table (:mod:`mt5lab.training.pit_mirror`) whose symbol runs were
checked once when it was built.
The row count is checked after every step: a step that changed it raises :class:`MaxLossExceeded`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl

from mt5lab.catalog import check_timeframe, ttl
from mt5lab.errors import MaxLossExceeded, StoreError
from mt5lab.progress import bar
from mt5lab.training import pit_mirror
from mt5lab.training.refs import Selection

BATCH_BYTES = 640 * 2**20
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


def _strictly_ordered(sym: pl.Series, ts: pl.Series) -> bool:
    """Sorted by symbol, time strictly increasing within a symbol (time may step back, or repeat,
    only where the symbol changes)."""
    if not sym.is_sorted():
        return False
    back = (ts.diff() <= timedelta(0)).fill_null(False).arg_true()
    return back.len() == 0 or bool((sym.gather(back) != sym.gather(back - 1)).all())


def _keys_of_store(store, tf: str, symbols, start, end) -> tuple[pl.DataFrame, pl.Series, int]:
    """The store's keys as ``(code, __fts, __ridx)``: ``code`` numbers the symbols (``uniq[code]``),
    ``__ridx`` is the row's position in the store's (deterministic) order. Also returns ``uniq`` and
    the number of rows read. Rows must come sorted by symbol, then time (the stores' contract); if
    not, or if two rows share a timestamp, they are sorted and the tie goes to the latest
    ``created_timestamp``, Feast's rule."""
    return _keys_from_frame(store.read_features(tf, symbols, start, end,
                                                columns=[_SYM, _T, "created_timestamp"]))


def _keys_from_frame(k: pl.DataFrame) -> tuple[pl.DataFrame, pl.Series, int]:
    raw = k.height
    k = k.select(_SYM, _T, "created_timestamp").with_row_index(_RIDX).filter(pl.col(_T).is_not_null())
    if not _strictly_ordered(k[_SYM], k[_T]):  # not the stores' contract, but cheap to honour
        k = (k.sort([_SYM, _T, "created_timestamp", _RIDX], nulls_last=False)
             .unique([_SYM, _T], keep="last", maintain_order=True))
    runs = k[_SYM].rle()
    uniq = runs.struct.field("value")
    code = pl.Series("code", np.repeat(np.arange(runs.len(), dtype=np.uint32), runs.struct.field("len").to_numpy()))
    return k.select(code, pl.col(_T).alias(_FTS), pl.col(_RIDX)), uniq, raw


def match_rows(keys: pl.DataFrame, store_keys: pl.DataFrame, uniq: pl.Series, span: timedelta) -> pl.DataFrame:
    """Per entity row (input order): ``idx``, the store row position of its point-in-time match (or
    null), and ``fts``, that row's ``event_timestamp`` in integer microseconds.

    ``keys``: ``symbol``, ``event_timestamp`` (tz-aware). ``store_keys``/``uniq``: from
    :func:`_keys_of_store` (symbol codes, strictly increasing time within each code). The search is
    a backward as-of per symbol: one ``numpy.searchsorted`` over ``code * width + time`` when that
    fits in 62 bits, else polars ``join_asof(by=code)``; both compare at the entity's precision.
    """
    n = keys.height
    unit = "ns" if keys.schema[_T].time_unit == "ns" else "us"  # never round an entity time
    if unit == "ns" and (keys[_T].dt.nanosecond() % 1000 == 0).all():
        unit = "us"  # whole microseconds (the usual case): exact in us, and keys stay in 62 bits
    per_us = 1000 if unit == "ns" else 1
    lcode = keys[_SYM].replace_strict(uniq, pl.int_range(uniq.len(), dtype=pl.UInt32, eager=True),
                                      default=None, return_dtype=pl.UInt32)
    known = lcode.is_not_null().to_numpy()
    lc = lcode.fill_null(0).to_numpy().astype(np.int64)
    lt = keys[_T].dt.cast_time_unit(unit).dt.epoch(unit).to_numpy()
    rc = store_keys["code"].to_numpy().astype(np.int64)
    rt = store_keys[_FTS].dt.cast_time_unit(unit).dt.epoch(unit).to_numpy()
    lo = int(min(rt.min(), lt.min()))
    width = int(max(rt.max(), lt.max())) - lo + 1
    if width * max(len(uniq), 1) < 2**62:
        rkey = rc * width + (rt - lo)
        lkey = lc * width + (lt - lo)
        order = np.argsort(lkey)  # sorted queries: searchsorted walks memory forward
        pos = np.empty(n, dtype=np.int64)
        pos[order] = np.searchsorted(rkey, lkey[order], side="right") - 1
        posc = np.clip(pos, 0, None)
        found = known & (pos >= 0) & (rc[posc] == lc)
    else:  # pragma: no cover - only for time ranges of centuries at nanosecond precision
        order = None
        left = pl.DataFrame({_ROW: np.arange(n), "code": lc, _T: lt}).filter(pl.Series(known)).sort(_T)
        right = pl.DataFrame({"code": rc, _FTS: rt, "pos": np.arange(len(rt))})
        j = left.join_asof(right, left_on=_T, right_on=_FTS, by="code", strategy="backward",
                           check_sortedness=False)
        if j.height != int(known.sum()):
            raise MaxLossExceeded(f"as-of join returned {j.height} rows for {int(known.sum())} entity rows")
        posc = np.zeros(n, dtype=np.int64)
        got = j["pos"].is_not_null().to_numpy()
        posc[j[_ROW].to_numpy()[got]] = j["pos"].to_numpy()[got]
        found = np.zeros(n, dtype=bool)
        found[j[_ROW].to_numpy()[got]] = True
    fts = rt[posc]
    ok = found & (fts >= lt - int(span / timedelta(microseconds=1)) * per_us)  # Feast: t - ttl <= ts
    return _matches(store_keys[_RIDX].to_numpy()[posc], fts // per_us, ok, order)


def _matches(ridx: np.ndarray, fts: np.ndarray, ok: np.ndarray, order: np.ndarray | None) -> pl.DataFrame:
    """:func:`match_rows`'s frame from per-entity-row arrays (store row, its event time in
    microseconds, whether it is the match) and the (symbol, time) order of the rows."""
    n = len(ok)
    out = pl.DataFrame({"idx": ridx, "fts": fts, "ok": ok}).select(
        pl.when("ok").then(pl.col("idx")).alias("idx"), pl.when("ok").then(pl.col("fts")).alias("fts"))
    if out.height != n:
        raise MaxLossExceeded(f"point-in-time join returned {out.height} rows for {n} entity rows")
    if order is not None:  # rows by (symbol, time): their store positions ascend, a gather order
        out = out.with_columns(pl.Series("order", order, dtype=pl.UInt32))
    return out


def _match_by_search_key(keys: pl.DataFrame, uniq: pl.Series, search, rt: np.ndarray,
                         span: timedelta) -> pl.DataFrame | None:
    """:func:`match_rows` over the mirror's precomputed search key (:func:`pit_mirror.search_key`):
    the same backward as-of search, with no pass over the table's five million rows. ``rt``: the
    mirror's event times, int64 microseconds. None (use :func:`match_rows`) for entity times
    finer than microseconds."""
    skey, base, width = search
    t = keys[_T]
    if t.dtype.time_unit == "ns" and not (t.dt.nanosecond() % 1000 == 0).all():
        return None
    lcode = keys[_SYM].replace_strict(uniq, pl.int_range(uniq.len(), dtype=pl.UInt32, eager=True),
                                      default=None, return_dtype=pl.UInt32)
    known = lcode.is_not_null().to_numpy()
    lc = lcode.fill_null(0).to_numpy().astype(np.int64)
    lt = t.dt.cast_time_unit("us").dt.epoch("us").to_numpy()
    lkey = lc * width + (np.clip(lt, base, base + width - 1) - base)
    order = np.argsort(lkey)  # sorted queries: searchsorted walks memory forward
    pos = np.empty(len(lt), dtype=np.int64)
    pos[order] = np.searchsorted(skey, lkey[order], side="right") - 1
    posc = np.clip(pos, 0, None)
    found = known & (pos >= 0) & (skey[posc] // width == lc)
    fts = rt[posc]
    ok = found & (fts >= lt - int(span / timedelta(microseconds=1)))  # Feast: t - ttl <= ts
    return _matches(posc.astype(np.uint32), fts, ok, order)


def _gather_plan(m: pl.DataFrame) -> tuple[pl.Series, pl.Series]:
    """Store positions in ascending order (nulls anywhere) and the permutation back: gathering in
    ascending row order reads each column front to back, then the small result is permuted to
    entity order."""
    idx = m["idx"]
    order = m["order"].to_numpy() if "order" in m.columns else idx.arg_sort(nulls_last=True).to_numpy()
    inv = np.empty(len(order), dtype=np.uint32)
    inv[order] = np.arange(len(order), dtype=np.uint32)
    return idx.gather(pl.Series(order)), pl.Series(inv)


def _gather(frame: pl.DataFrame, feats, gidx: pl.Series, inv: pl.Series) -> pl.DataFrame:
    """``frame``'s feature columns at ``gidx`` (ascending; null: no match), permuted to entity order
    by ``inv``; one ``select`` so polars gathers the columns in parallel, each column's two gathers
    back to back (its intermediate is still in cache for the permutation). Unmatched rows are
    gathered at row 0, then nulled by one mask: a gather by a null-free index is ~30% cheaper."""
    misses = gidx.null_count()
    if misses == 0 or frame.height == 0:
        return frame.select(pl.col(f.name).gather(gidx).gather(inv).cast(_dtype(f)) for f in feats)
    hit, g0 = pl.lit(gidx.is_not_null().gather(inv)), gidx.fill_null(0)
    out = frame.select(pl.col(f.name).gather(g0).gather(inv).cast(_dtype(f)) for f in feats)
    return out.select(pl.when(hit).then(pl.col(f.name)).alias(f.name) for f in feats)


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
    if getattr(store, "profile", None) == "postgres":  # pit_sql imports psycopg (~0.1 s): only here
        from mt5lab.training import pit_sql

        if pit_sql.supports(store) and n <= pit_sql.LATERAL_MAX_ROWS:
            return pit_sql.point_in_time_sql(keys, store, tf, selection)

    if pit_mirror.enabled(store):
        return _from_mirror(keys, store, tf, selection, span)
    symbols, start, end = _bounds(keys, span)
    skeys, uniq, raw = _keys_of_store(store, tf, symbols, start, end)
    if skeys.height == 0:
        return _empty(selection, n)
    m = match_rows(keys, skeys, uniq, span)
    fts = m["fts"]
    gidx, inv = _gather_plan(m)
    parts: list[pl.DataFrame] = []
    # one query per batch; a store that reads whole rows anyway gets one batch
    batches = _batches(selection, raw) if getattr(store, "profile", "") == "local" else [selection.features]
    for feats in bar(batches, f"training set {tf}", "batch", progress and len(batches) > 1):
        names = [f.name for f in feats]
        cols = store.read_features(tf, symbols, start, end, columns=[_SYM, _T, *names])
        got = cols[_T].gather(gidx).gather(inv).dt.epoch("us") if cols.height == raw else None
        if got is None or not ((got == fts) | (got.is_null() & fts.is_null())).fill_null(False).all():
            raise StoreError("the offline store changed between reads of one training set (rows moved); "
                             "retry when no build or ingest is running")
        part = _gather(cols, feats, gidx, inv)
        del cols
        if part.height != n:
            raise MaxLossExceeded(f"gather returned {part.height} rows for {n} entity rows")
        parts.append(part)
    out = pl.concat(parts, how="horizontal")
    return out.select(selection_names(selection))


def _from_mirror(keys: pl.DataFrame, store, tf: str, selection: Selection, span: timedelta) -> pl.DataFrame:
    """The same join over the local store's memory-mapped mirror (:mod:`mt5lab.training.pit_mirror`)."""
    n = keys.height
    d = pit_mirror.mirror_dir(store, tf)
    if d is None:
        return _empty(selection, n)
    runs = pit_mirror.runs(d)
    m = None
    if runs is None:
        skeys, uniq, raw = _keys_from_frame(pit_mirror.read(d))
    else:  # the contract was checked at build time: codes straight from the runs
        k = pit_mirror.read(d, keys=(_T,))
        raw, uniq = k.height, runs["symbol"]
        search = pit_mirror.search_key(d)
        if search is not None and len(search[0]) == raw and 0 < raw < 2**32:
            rt = k[_T].dt.cast_time_unit("us").to_physical().to_numpy()
            m = _match_by_search_key(keys, uniq, search, rt, span)
        if m is None:
            code = np.repeat(np.arange(runs.height, dtype=np.uint32), runs["len"].to_numpy())
            skeys = pl.DataFrame({"code": code, _FTS: k[_T], _RIDX: np.arange(raw, dtype=np.uint32)})
    if m is None:
        if skeys.height == 0:
            return _empty(selection, n)
        m = match_rows(keys, skeys, uniq, span)
    gidx, inv = _gather_plan(m)
    table = pit_mirror.read(d, [f.name for f in selection.features], keys=(_T,))
    if table.height != raw:
        raise StoreError(f"feature mirror {d} is inconsistent (rows differ); delete it and retry")
    out = _gather(table, selection.features, gidx, inv)
    if out.height != n:
        raise MaxLossExceeded(f"gather returned {out.height} rows for {n} entity rows")
    return out


def selection_names(selection: Selection) -> list[str]:
    return [f.name for f in selection.features]
