"""Columnar COPY in and out of PostgreSQL: polars frames, never Python rows.

In: :func:`binary_copy_chunks` encodes a frame as PostgreSQL's binary COPY format with numpy, a
chunk of rows at a time. Every column becomes a ``(rows, width)`` byte matrix (4-byte length, then
the big-endian value) plus a mask of the bytes that exist (a null has only its length, -1; a text
value only its own bytes); ``matrix[mask]`` walks the rows in order, so the kept bytes are exactly
the COPY stream. Binary avoids float text formatting and parsing on both ends (exact doubles).

Out: :func:`copy_out` runs ``COPY (SELECT ...) TO STDOUT (FORMAT csv)`` and parses it with polars'
CSV reader. Timestamps leave the server as integer microseconds since the Unix epoch (exact, no
zone or format parsing) and become ``Datetime("us", "UTC")`` again here. Doubles are printed by
PostgreSQL (>= 12) in shortest round-trip form, so they read back bit for bit.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import polars as pl
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
_PG_EPOCH_US = 946_684_800 * 1_000_000  # 2000-01-01 in Unix microseconds
_NULL_LEN = np.frombuffer(np.array([-1], ">i4").tobytes(), np.uint8)
_LEN8 = np.frombuffer(np.array([8], ">i4").tobytes(), np.uint8)


def _fixed(values: np.ndarray, nulls: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """8-byte big-endian values with their length prefix; nulls keep only a -1 length."""
    n = len(values)
    mat = np.empty((n, 12), np.uint8)
    mat[:, :4] = _LEN8
    mat[:, 4:] = values.view(np.uint8).reshape(n, 8)
    if nulls is None or not nulls.any():
        return mat, None
    mat[nulls, :4] = _NULL_LEN
    mask = np.ones((n, 12), bool)
    mask[nulls, 4:] = False
    return mat, mask


def _column(s: pl.Series) -> tuple[np.ndarray, np.ndarray | None]:
    nulls = s.is_null().to_numpy() if s.null_count() else None
    dt = s.dtype
    if dt == pl.String:
        if nulls is not None:
            raise ValueError(f"column {s.name!r} has nulls")
        codes = (s.rank("dense").to_numpy() - 1).astype(np.int64)  # index into sorted uniques
        uniq = [v.encode() for v in s.unique().sort().to_list()]
        width = max((len(u) for u in uniq), default=0)
        lut = np.zeros((len(uniq), 4 + width), np.uint8)
        lut_len = np.array([len(u) for u in uniq], np.int64)
        for i, u in enumerate(uniq):
            lut[i, :4] = np.frombuffer(np.array([len(u)], ">i4").tobytes(), np.uint8)
            lut[i, 4:4 + len(u)] = np.frombuffer(u, np.uint8)
        mat = lut[codes]
        mask = np.arange(4 + width)[None, :] < (4 + lut_len[codes])[:, None]
        return mat, mask
    if isinstance(dt, pl.Datetime):
        us = s.dt.cast_time_unit("us").to_physical().fill_null(0).to_numpy().astype(np.int64)
        return _fixed((us - _PG_EPOCH_US).astype(">i8"), nulls)
    if dt.is_float():
        return _fixed(s.cast(pl.Float64).fill_null(0.0).to_numpy().astype(">f8"), nulls)
    if dt.is_integer():
        return _fixed(s.cast(pl.Int64).fill_null(0).to_numpy().astype(">i8"), nulls)
    raise TypeError(f"column {s.name!r}: no binary COPY encoding for {dt}")


def binary_copy_chunks(frame: pl.DataFrame, chunk_rows: int = 100_000) -> Iterator[bytes]:
    """The binary COPY stream of ``frame`` (text, float, int and datetime columns)."""
    yield HEADER
    ncols = np.frombuffer(np.array([frame.width], ">i2").tobytes(), np.uint8)
    for off in range(0, frame.height, chunk_rows):
        part = frame.slice(off, chunk_rows)
        cols = [_column(s) for s in part.iter_columns()]
        width = 2 + sum(m.shape[1] for m, _ in cols)
        full = np.empty((part.height, width), np.uint8)
        full[:, :2] = ncols
        mask = None
        pos = 2
        for m, k in cols:
            full[:, pos:pos + m.shape[1]] = m
            if k is not None and not k.all():
                if mask is None:
                    mask = np.ones(full.shape, bool)
                mask[:, pos:pos + m.shape[1]] = k
            pos += m.shape[1]
        yield full.tobytes() if mask is None else full[mask].tobytes()
    yield TRAILER


def copy_in(cur, table: sql.Composable, frame: pl.DataFrame) -> None:
    """Binary COPY of ``frame`` into ``table`` (columns by name, in the frame's order)."""
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in frame.columns)
    # The queued writer sends from a thread: encoding the next chunk overlaps the server's work.
    stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(table, cols)
    with cur.copy(stmt, writer=QueuedLibpqWriter(cur)) as cp:
        for chunk in binary_copy_chunks(frame):
            cp.write(chunk)


def select_list(schema: dict[str, pl.DataType], alias: str | None = None) -> sql.Composable:
    """Columns for :func:`copy_out`: datetimes as exact integer Unix microseconds."""
    items = []
    for name, dt in schema.items():
        ident = sql.Identifier(name)
        col = sql.SQL("{}.{}").format(sql.Identifier(alias), ident) if alias else ident
        if isinstance(dt, pl.Datetime):
            items.append(sql.SQL("(extract(epoch FROM {}) * 1000000)::int8 AS {}").format(col, ident))
        else:
            items.append(col)
    return sql.SQL(", ").join(items)


def copy_out(cur, query: sql.Composable, params, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Run ``query`` (its select list from :func:`select_list`) through COPY TO; return polars."""
    buf = io.BytesIO()
    stmt = sql.SQL("COPY ({}) TO STDOUT (FORMAT csv)").format(query)
    with cur.copy(stmt, params) as cp:
        for data in cp:
            buf.write(data)
    if buf.tell() == 0:
        return pl.DataFrame(schema=schema)
    wire = {c: (pl.Int64 if isinstance(t, pl.Datetime) else t) for c, t in schema.items()}
    frame = pl.read_csv(buf.getvalue(), has_header=False, new_columns=list(schema), schema=wire,
                        infer_schema=False)
    return frame.with_columns(
        pl.col(c).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
        for c, t in schema.items() if isinstance(t, pl.Datetime)
    )


def binary_tuples(chunks) -> Iterator[list[memoryview | None]]:
    """The tuples of a binary ``COPY ... TO STDOUT (FORMAT binary)`` stream, each a list of its
    fields' bytes (read-only memoryviews into the stream's chunks, None for a null), from the
    stream's chunks in any split. No copy when a chunk holds whole tuples (PostgreSQL sends one
    tuple per message); a tuple split over chunks is joined once. Memory: one tuple."""
    rest, header, done = b"", False, False
    for chunk in chunks:  # read to the end even after the trailer: the connection must see it
        if done:
            continue
        buf = memoryview(bytes(rest) + bytes(chunk) if rest else chunk).cast("B")
        off = 0
        if not header:
            if len(buf) < len(HEADER):
                rest = bytes(buf)
                continue
            if bytes(buf[:11]) != HEADER[:11]:
                raise ValueError("not a binary COPY stream")
            off = len(HEADER) + int.from_bytes(buf[15:19], "big")
            header = True
        while True:
            end = _tuple_end(buf, off)
            if end is None:
                break
            if end < 0:  # the trailer
                done = True
                break
            fields, pos = [], off + 2
            for _ in range(int.from_bytes(buf[off:off + 2], "big")):
                n = int.from_bytes(buf[pos:pos + 4], "big", signed=True)
                pos += 4
                fields.append(None if n < 0 else buf[pos:pos + n])
                pos += max(n, 0)
            off = end
            yield fields
        rest = bytes(buf[off:]) if off < len(buf) and not done else b""


def _tuple_end(buf, off: int) -> int | None:
    """End offset of the tuple at ``off``, -1 at the trailer, None if not all of it is in ``buf``."""
    if len(buf) < off + 2:
        return None
    count = int.from_bytes(buf[off:off + 2], "big", signed=True)
    if count == -1:
        return -1
    pos = off + 2
    for _ in range(count):
        if len(buf) < pos + 4:
            return None
        pos += 4 + max(int.from_bytes(buf[pos:pos + 4], "big", signed=True), 0)
    return pos if len(buf) >= pos else None


def binary_array(field, width: int, dtype: str) -> tuple[np.ndarray, tuple[int, ...]]:
    """The elements of a binary PostgreSQL array of fixed-``width`` values without nulls (``dtype``,
    e.g. ``">f8"``, in row-major order) and its shape. The elements are a read-only strided view
    of ``field`` (no copy; assigning it into a native array byte-swaps in the same pass). An array
    with a null, or an element of another width, raises ValueError."""
    head = np.frombuffer(field, ">i4", 3)
    ndim, hasnull = int(head[0]), int(head[1])
    if hasnull:
        raise ValueError("array has nulls")
    if ndim == 0:
        return np.empty(0, dtype), (0,)
    dims = np.frombuffer(field, ">i4", 2 * ndim, 12)[::2]
    shape = tuple(int(d) for d in dims)
    size = int(np.prod(shape))
    if len(field) != 12 + 8 * ndim + size * (4 + width) or np.dtype(dtype).itemsize != width:
        raise ValueError(f"array elements are not {width} bytes wide")
    body = np.frombuffer(field, np.dtype([("n", ">i4"), ("v", dtype)]), size, 12 + 8 * ndim)
    if (body["n"] != width).any():
        raise ValueError(f"array elements are not {width} bytes wide")
    return body["v"], shape
