"""A memory-mapped Arrow mirror of the local store's feature table, for point-in-time joins.

Parquet (zstd) must be decoded whole to read any row of a row group, so every training set on the
local profile would decode the entire feature table: seconds for 5M rows, even for 10 entity
rows. This mirror holds the same rows uncompressed in Arrow IPC files (one for the keys, one per
view), read with ``memory_map=True``: a join touches only the pages of the rows it gathers.

``runs.arrow`` holds the symbols' runs (symbol, row count) when the keys keep the stores' order
contract, checked once at build time, so that a join maps entity symbols to row ranges without a
pass over five million symbol strings; ``search.arrow`` then holds the as-of search key of every
row (:func:`search_key`), so a join does no arithmetic over the whole table either.

It is a cache, never a source of truth: built from one snapshot of the Parquet file (opened once,
so a concurrent ``os.replace`` by a writer cannot mix versions), keyed by that file's inode, mtime
and size, so any write makes it stale and the next join rebuilds it (about one full read of the
Parquet file, view by view to bound memory). Lives under ``<data dir>/cache/pit/`` and can be
deleted at any time. ``MT5LAB_PIT_MIRROR=0`` turns it off (joins then read through
``OfflineStore.read_features``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from mt5lab.catalog import VIEWS, check_timeframe

KEY_COLUMNS = ("symbol", "event_timestamp", "created_timestamp")
LAYOUT = 3
"""Version of the mirror's files (2: with ``runs.arrow``; 3: one record batch per file, so every
mapped column is one contiguous chunk (gathers skip per-chunk lookups, ~20% of a join), and
``search.arrow``, the as-of search key, so a join does no arithmetic over the whole table); part of the directory name, so a mirror of an older layout is
rebuilt."""


def enabled(store) -> bool:
    return (getattr(store, "profile", None) == "local" and hasattr(store, "features_path")
            and os.environ.get("MT5LAB_PIT_MIRROR", "1").strip().lower() not in ("0", "false", "no"))


def _write(frame: pl.DataFrame, path: Path) -> None:
    """Uncompressed Arrow IPC, all rows in one record batch (polars' ``write_ipc`` splits them)."""
    table = frame.rechunk().to_arrow()
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=max(table.num_rows, 1))


def symbol_runs(keys: pl.DataFrame) -> pl.DataFrame | None:
    """``symbol, len``: the runs of the key table's symbols, if it keeps the stores' contract
    (sorted by symbol, ``event_timestamp`` strictly increasing within a symbol, no nulls), else None.
    With them a join needs no pass over the symbol strings (:func:`runs`)."""
    sym, ts = keys["symbol"], keys["event_timestamp"]
    if sym.null_count() or ts.null_count() or not sym.is_sorted():
        return None
    back = (ts.diff() <= timedelta(0)).fill_null(False).arg_true()
    if back.len() and not bool((sym.gather(back) != sym.gather(back - 1)).all()):
        return None
    r = sym.rle()
    return pl.DataFrame({"symbol": r.struct.field("value"), "len": r.struct.field("len").cast(pl.Int64)})


def _write_search_key(ts: pl.Series, runs_: pl.DataFrame, path: Path) -> None:
    """``key = code * width + (event_timestamp - base)`` (int64, microseconds; ``code`` numbers the
    symbol runs), strictly increasing over the whole table, with ``base = min - 1`` and ``width =
    max - base + 1`` in the schema metadata: an entity time clipped to ``[base, max]`` gives a key
    inside its symbol's band, below all of its rows if earlier than them. Not written when the
    keys would not fit in 62 bits (the join then builds them per call)."""
    us = ts.dt.cast_time_unit("us").dt.epoch("us")
    if us.len() == 0:
        return
    base = int(us.min()) - 1
    width = int(us.max()) - base + 1
    if width * max(runs_.height, 1) >= 2**62:
        return
    code = pl.Series(np.repeat(np.arange(runs_.height, dtype=np.int64), runs_["len"].to_numpy()))
    table = pa.table({"key": (code * width + (us - base)).to_numpy()})
    table = table.replace_schema_metadata({"base": str(base), "width": str(width)})
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=max(table.num_rows, 1))


def search_key(directory: Path) -> tuple[np.ndarray, int, int] | None:
    """The mirror's search key (memory-mapped int64), ``base`` and ``width`` (see
    :func:`_write_search_key`), or None if it has none."""
    path = directory / "search.arrow"
    if not path.exists():
        return None
    reader = pa.ipc.open_file(pa.memory_map(str(path), "r"))
    meta = reader.schema.metadata or {}
    col = reader.read_all().column("key")
    if col.num_chunks != 1 or col.null_count or b"base" not in meta:
        return None
    return col.chunk(0).to_numpy(zero_copy_only=True), int(meta[b"base"]), int(meta[b"width"])


def runs(directory: Path) -> pl.DataFrame | None:
    """The mirror's :func:`symbol_runs`, or None if its keys break the contract."""
    path = directory / "runs.arrow"
    return pl.read_ipc(path) if path.exists() else None


def _build(fh, target: Path) -> None:
    """Write keys and per-view files into a temporary directory, then rename it into place."""
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
    try:
        pf = pq.ParquetFile(fh)
        names = set(pf.schema_arrow.names)
        keys = pl.from_arrow(pf.read(columns=list(KEY_COLUMNS)))
        _write(keys, tmp / "keys.arrow")
        symbol_runs_ = symbol_runs(keys)
        if symbol_runs_ is not None:
            _write(symbol_runs_, tmp / "runs.arrow")
            _write_search_key(keys["event_timestamp"], symbol_runs_, tmp / "search.arrow")
        del keys
        for v in VIEWS:
            cols = [f.name for f in v.features if f.name in names]
            _write(pl.from_arrow(pf.read(columns=cols)), tmp / f"{v.name}.arrow")
        try:
            os.rename(tmp, target)
        except OSError:  # another process built the same snapshot first: use theirs
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def mirror_dir(store, timeframe: str) -> Path | None:
    """The up-to-date mirror directory of ``timeframe`` (built if stale), or None if no table."""
    tf = check_timeframe(timeframe)
    path = Path(store.features_path(tf))
    try:
        fh = open(path, "rb")  # held open: one consistent snapshot
    except FileNotFoundError:
        return None
    with fh:
        st = os.fstat(fh.fileno())
        base = Path(store.root) / "cache" / "pit" / tf
        target = base / f"{LAYOUT}-{st.st_ino}-{st.st_mtime_ns}-{st.st_size}"
        if not target.is_dir():
            base.mkdir(parents=True, exist_ok=True)
            for old in base.iterdir():  # stale snapshots (readers holding maps keep their pages)
                if old.name != target.name and not old.name.startswith(".build-"):
                    shutil.rmtree(old, ignore_errors=True)
            _build(fh, target)
    return target


def _mapped(path: Path, columns: list[str] | None = None) -> pl.DataFrame:
    """Zero-copy: pyarrow maps the file, polars wraps the buffers (no read, no decode)."""
    table = pa.ipc.open_file(pa.memory_map(str(path), "r")).read_all()
    if columns is not None:
        table = table.select(columns)
    return pl.from_arrow(table, rechunk=False)


def read(directory: Path, columns: list[str] | None = None, keys=KEY_COLUMNS) -> pl.DataFrame:
    """``keys`` (key column names) plus ``columns`` (feature names), memory-mapped, in the mirror's
    row order. Leave out ``symbol`` where it is not needed: its five million strings are the one
    column polars converts instead of wrapping (~40 ms)."""
    frames = [_mapped(directory / "keys.arrow", list(keys))]
    if columns:
        wanted = set(columns)
        for v in VIEWS:
            cols = [f.name for f in v.features if f.name in wanted]
            if cols:
                frames.append(_mapped(directory / f"{v.name}.arrow", cols))
    return pl.concat(frames, how="horizontal")
