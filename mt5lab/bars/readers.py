"""Read bar files (MT5 terminal exports, generic CSV, Parquet) into canonical bars, streaming.

Output: the canonical schema (:data:`mt5lab.catalog.BAR_SCHEMA`) plus ``source_row`` (Int64), the 1-based data row
in the file (header and blank lines not counted), so :mod:`mt5lab.bars.validate` can name a row. Every
failure is a :class:`~mt5lab.errors.BarValidationError` naming the file, the row (or None) and a
short rule, or a :class:`~mt5lab.errors.ConfigError` for a bad argument; never a raw polars, pyarrow
or decoding error.

Times: see :mod:`mt5lab.bars.clock`, the one conversion every entry point uses. Naive times (every
timeframe, D1 and W1 included) are the bar's open on the server clock ``server_tz``; an MT5 or MT4
export has no default clock (pass ``server_tz`` or set ``MT5LAB_SERVER_TZ``), a generic table
defaults to UTC. tz-aware input is converted to UTC; a file mixing naive and aware times is an error.
Integer times are epoch values of the server clock, their unit detected from the magnitude (and
said, as a warning). A DST fold resolves by row order; a DST gap time, or a time outside
1970..2100, is an error naming its row.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from mt5lab.bars.clock import check_range, epoch_times, resolve_server_tz, to_utc
from mt5lab.bars.formats import (
    FORMATS,
    MT4_COLUMNS,
    TextLayout,
    first_bad_row,
    resolve_mt5,
    resolve_table,
    sniff_text,
)
from mt5lab.catalog import BAR_SCHEMA, check_timeframe
from mt5lab.errors import BarValidationError, ConfigError, Mt5LabError

PathLike = str | os.PathLike
_NUMERIC = {"open": False, "high": False, "low": False, "close": False,
            "tick_volume": True, "real_volume": True, "spread": True}
_BLOCK = 1 << 20
"""pyarrow's streaming CSV reader reads ~40 blocks ahead: 1 MiB blocks keep that near 40 MiB (64 MiB
blocks would buffer a 2 GB file whole)."""
_AWARE = r"\d:\d\d(:\d\d(\.\d+)?)?\s*(Z|[+-]\d\d:?\d\d)$"  # a clock time with a UTC offset



class _Ctx:
    """What one file's batches share: names, arguments and the naive/aware state of its times."""

    def __init__(self, path: Path, symbol: str | None, timeframe: str, server_tz: str | None):
        self.source, self.symbol, self.given_tz = path.name, symbol, server_tz
        self.server_tz = resolve_server_tz(server_tz, self.source, required=False)  # checks a given one
        try:
            self.timeframe = check_timeframe(timeframe)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        self.aware: bool | None = None
        self.offset = 0
        self.unit: str | None = None  # epoch unit of integer times, from the first value
        self.seen: set = set()  # DST-fold wall times already given their first instant

    def server_clock(self) -> None:
        """The file is an MT5/MT4 export: its times are server-clock times, no default zone."""
        self.server_tz = resolve_server_tz(self.given_tz, self.source, required=True)

    def fail(self, rule: str, detail: str = "", row: int | None = None) -> BarValidationError:
        return BarValidationError(self.source, row, rule, detail)


def _first(mask: pl.Series) -> int | None:
    idx = mask.fill_null(False).arg_true()
    return None if idx.is_empty() else int(idx[0])


def _to_number(txt: pl.Series, integer: bool) -> pl.Series:
    if not integer:
        return txt.cast(pl.Float64, strict=False)
    exact = txt.cast(pl.Int64, strict=False)
    if exact.null_count() == txt.null_count():
        return exact
    f = txt.cast(pl.Float64, strict=False)
    whole = pl.select(pl.when(f.is_finite() & (f == f.round())).then(f)).to_series()
    return exact.fill_null(whole.cast(pl.Int64, strict=False))


def _numeric(s: pl.Series, name: str, integer: bool, ctx: _Ctx, rows: pl.Series) -> pl.Series:
    """Parse one numeric column; the first unparseable value is an error naming its row."""
    if not (s.dtype == pl.String or s.dtype.is_numeric() or s.dtype == pl.Null):
        raise ctx.fail(f"non-numeric {name}", f"column has type {s.dtype}", int(rows[0]))
    out = _to_number(s, integer)
    if out.null_count() > s.null_count():  # blanks, padding or garbage: look closer
        txt = s.str.strip_chars() if s.dtype == pl.String else s
        out = _to_number(txt, integer)
        present = txt.is_not_null() & (txt != "") if s.dtype == pl.String else txt.is_not_null()
        bad = _first(present & out.is_null())
        if bad is not None:
            raise ctx.fail(f"non-numeric {name}", f"value {s[bad]!r}", int(rows[bad]))
    return out.alias(name)


def _parse_strings(s: pl.Series, fmts: tuple[str | None, ...]) -> pl.Series:
    out = s.str.to_datetime(fmts[0], strict=False, time_unit="us")
    for fmt in fmts[1:]:
        if out.null_count() == s.null_count():
            break
        out = out.fill_null(s.str.to_datetime(fmt, strict=False, time_unit="us"))
    return out


def _parse_time(s: pl.Series, ctx: _Ctx, rows: pl.Series, fmts: tuple[str, ...] = ()) -> pl.Series:
    """Strings, dates, datetimes or epoch seconds to a Datetime (naive or UTC), errors by row.

    Strings without ``fmts`` use polars' format inference from the first value, so a naive value
    in a file of offset-carrying values (or the reverse) fails to parse and is reported as mixing.
    """
    if s.dtype == pl.String and not fmts and _all_integers(s):  # epoch integers written as text
        return _epoch(s.str.strip_chars().cast(pl.Int64, strict=False), ctx, rows, s)
    if s.dtype == pl.String:
        out = _parse_strings(s, fmts or (None,))
        if out.null_count():
            s = s.str.strip_chars()
            out = _parse_strings(s, fmts or (None,))
    elif isinstance(s.dtype, pl.Datetime):
        out = s.dt.cast_time_unit("us")
    elif s.dtype == pl.Date:
        out = s.cast(pl.Datetime("us"))
    elif s.dtype.is_integer():
        out = _epoch(s, ctx, rows)
    else:
        raise ctx.fail("invalid time", f"column has type {s.dtype}", int(rows[0]))
    is_aware = out.dtype.time_zone is not None
    bad = _first(out.is_null())
    if bad is not None:
        value = s[bad]
        mixed = isinstance(value, str) and bool(re.search(_AWARE, value)) != is_aware
        rule = "mixed naive and tz-aware times" if mixed else "invalid time"
        raise ctx.fail(rule, f"value {value!r}", int(rows[bad]))
    if ctx.aware is not None and is_aware != ctx.aware:
        raise ctx.fail("mixed naive and tz-aware times", f"value {s[0]!r}", int(rows[0]))
    ctx.aware = is_aware
    return out


def _all_integers(s: pl.Series) -> bool:
    present = s.drop_nulls().str.strip_chars()
    present = present.filter(present != "")
    return present.len() > 0 and bool(present.str.contains(r"^-?\d+$").all())


def _epoch(s: pl.Series, ctx: _Ctx, rows: pl.Series, raw: pl.Series | None = None) -> pl.Series:
    """Integer epoch times on the server clock (MT5's ``copy_rates_*``: no default clock), in the unit
    the file's first value's magnitude says; out of range: error naming the row."""
    if ctx.unit is None:
        ctx.server_clock()
        if s.drop_nulls().is_empty():
            raise ctx.fail("invalid time", "no time value", int(rows[0]))
    out, ctx.unit = epoch_times(s, ctx.unit, ctx.fail, rows, source=ctx.source, server_tz=ctx.server_tz, raw=raw)
    return out


def _to_utc(t: pl.Series, ctx: _Ctx, rows: pl.Series, raw: pl.Series) -> pl.Series:
    """Naive server-clock times to UTC through :func:`mt5lab.bars.clock.to_utc`; aware ones converted."""
    if t.dtype.time_zone is not None:
        utc = t.dt.convert_time_zone("UTC")
        check_range(utc, ctx.fail, rows, raw)
        return utc
    return to_utc(t, ctx.server_tz, ctx.fail, rows, raw, ctx.seen)


def _canonical(raw: pl.DataFrame, cols: dict[str, str | tuple[str, ...]], ctx: _Ctx,
               fmts: tuple[str, ...] = ()) -> pl.DataFrame:
    """One batch of source columns (``cols``: canonical name -> source column) to canonical bars."""
    n = raw.height
    rows = pl.int_range(ctx.offset + 1, ctx.offset + n + 1, dtype=pl.Int64, eager=True)
    out: dict[str, pl.Series] = {}
    src = cols["time"]
    if isinstance(src, tuple):  # separate date and time-of-day columns
        time_raw = pl.select(pl.concat_str([raw[c].cast(pl.String) for c in src], separator=" ")).to_series()
    else:
        time_raw = raw[src]
    out["time"] = _to_utc(_parse_time(time_raw, ctx, rows, fmts), ctx, rows, time_raw)
    for name, integer in _NUMERIC.items():
        if name in cols:
            out[name] = _numeric(raw[cols[name]], name, integer, ctx, rows)
        else:
            out[name] = pl.Series(name, [0 if name == "real_volume" else None] * n, pl.Int64)
    if "symbol" in cols:
        sym = raw[cols["symbol"]].cast(pl.String)
        bad = None if ctx.symbol is None else _first(sym != ctx.symbol)
        if bad is not None:
            raise ctx.fail("symbol mismatch", f"{sym[bad]!r} in a file read as {ctx.symbol!r}", int(rows[bad]))
        out["symbol"] = sym
    else:
        out["symbol"] = pl.Series([ctx.symbol] * n, dtype=pl.String)
    if "timeframe" in cols:
        tf = raw[cols["timeframe"]].cast(pl.String).str.strip_chars().str.to_uppercase()
        bad = _first(tf != ctx.timeframe)
        if bad is not None:
            raise ctx.fail("timeframe mismatch", f"{tf[bad]!r} in a file read as {ctx.timeframe}",
                           int(rows[bad]))
    out["timeframe"] = pl.Series([ctx.timeframe] * n, dtype=pl.String)
    ctx.offset += n
    frame = pl.DataFrame([out[c].alias(c) for c in BAR_SCHEMA]).cast(BAR_SCHEMA)
    return frame.with_columns(source_row=rows)


def _csv_batches(path: Path, layout: TextLayout, ctx: _Ctx, batch_rows: int) -> Iterator[pl.DataFrame]:
    """Stream a delimited text file as string columns ``c0..cN`` in batches of ``batch_rows``."""
    names = [f"c{i}" for i in range(len(layout.header))]
    invalid: list[int] = []

    def on_invalid(row) -> str:
        invalid.append(row.actual_columns)
        return "skip"

    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(skip_rows=0 if layout.mt4 else 1, column_names=names, encoding=layout.arrow_encoding,
                                       block_size=_BLOCK),
        parse_options=pacsv.ParseOptions(delimiter=layout.delimiter, invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in names}),
    )
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in reader:
        if invalid:
            break
        pending.append(batch)
        count += batch.num_rows
        while count >= batch_rows:
            table = pa.Table.from_batches(pending)
            yield pl.from_arrow(table.slice(0, batch_rows))
            rest = table.slice(batch_rows)
            pending, count = rest.to_batches(), rest.num_rows
    if invalid:
        row, got = first_bad_row(path, layout)
        raise ctx.fail("truncated row" if got < len(names) else "too many fields",
                       f"{got} fields, expected {len(names)}", row)
    if count:
        yield pl.from_arrow(pa.Table.from_batches(pending))


def iter_bars(path: PathLike, *, symbol: str | None = None, timeframe: str, format: str = "auto",
              server_tz: str | None = None, mapping: dict[str, str] | None = None,
              batch_rows: int = 500_000) -> BarStream:
    """Yield canonical bars (plus ``source_row``) from ``path`` in batches of ``batch_rows`` rows.

    Memory stays bounded by the batch size, so multi-GB exports stream. ``format`` is ``auto``
    (Parquet by suffix, MT5 export by its ``<DATE>`` header, MT4 History Center export by its
    headerless ``2019.02.15,14:00,o,h,l,c,v`` rows, else CSV), ``mt5``, ``csv`` or ``parquet``. See
    :func:`read_table` for ``mapping``. ``server_tz``: see :mod:`mt5lab.bars.clock` (required, or
    ``MT5LAB_SERVER_TZ``, for MT5/MT4 exports; UTC by default for generic tables).
    """
    path = Path(path)
    if format not in FORMATS:
        raise ConfigError(f"unknown format {format!r}; expected one of {', '.join(FORMATS)}")
    if batch_rows < 1:
        raise ConfigError(f"batch_rows must be positive, got {batch_rows}")
    ctx = _Ctx(path, symbol, timeframe, server_tz)  # argument errors surface here, not on first next()
    return BarStream(_stream(path, ctx, format, mapping, batch_rows), ctx)


class BarStream:
    """The batches of :func:`iter_bars`, and the clock whose grid they are on (:attr:`grid_tz`)."""

    def __init__(self, batches: Iterator[pl.DataFrame], ctx: _Ctx):
        self._batches, self._ctx = batches, ctx

    def __iter__(self) -> Iterator[pl.DataFrame]:
        return self._batches

    def __next__(self) -> pl.DataFrame:
        return next(self._batches)

    @property
    def grid_tz(self) -> str:
        """``server_tz`` if given; UTC for tz-aware times (``MT5LAB_SERVER_TZ`` is about naive
        server-clock times, not explicit UTC ones); else the clock the times were read on."""
        if self._ctx.given_tz is not None:
            return self._ctx.server_tz
        return "UTC" if self._ctx.aware else self._ctx.server_tz


def _stream(path: Path, ctx: _Ctx, format: str, mapping: dict[str, str] | None,
            batch_rows: int) -> Iterator[pl.DataFrame]:
    """The generator behind :func:`iter_bars`: wraps every foreign error into an mt5lab error."""
    try:
        if format == "parquet" or (format == "auto" and path.suffix.lower() in (".parquet", ".pq")):
            batches = _parquet(path, ctx, mapping, batch_rows)
        else:
            batches = _text(path, ctx, format, mapping, batch_rows)
        yield from batches
    except Mt5LabError:
        raise
    except FileNotFoundError as exc:
        raise ctx.fail("cannot open file", str(exc.strerror or exc)) from exc
    except (UnicodeError, pa.ArrowInvalid) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        rule = "invalid encoding" if "utf" in msg.lower() or isinstance(exc, UnicodeError) else "unreadable file"
        raise ctx.fail(rule, msg) from exc
    except (OSError, OverflowError, pa.ArrowException, pl.exceptions.PolarsError) as exc:
        raise ctx.fail("unreadable file", str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
    if ctx.offset == 0:
        raise ctx.fail("no data rows", "the file has a header but no bars")


def _text(path: Path, ctx: _Ctx, format: str, mapping: dict[str, str] | None,
          batch_rows: int) -> Iterator[pl.DataFrame]:
    layout = sniff_text(path, ctx.fail)
    mt5 = format == "mt5" or (format == "auto" and layout.looks_mt5)
    if mt5 or layout.mt4:
        what = "an MT4 History Center export" if layout.mt4 else "an MT5 export"
        if ctx.symbol is None:
            raise ConfigError(f"{ctx.source}: {what} has no symbol column; pass symbol= (CLI: --symbol)")
        ctx.server_clock()
        cols = MT4_COLUMNS if layout.mt4 else resolve_mt5(layout, ctx.timeframe, ctx.fail)
        fmts = ("%Y.%m.%d %H:%M:%S", "%Y.%m.%d %H:%M") if isinstance(cols["time"], tuple) else ("%Y.%m.%d",)
    else:
        cols, fmts = resolve_table(layout.header, mapping, ctx.symbol, ctx.fail, layout.delimiter_hint), ()
    named = {k: (tuple(f"c{i}" for i in v) if isinstance(v, tuple) else f"c{v}") for k, v in cols.items()}
    for raw in _csv_batches(path, layout, ctx, batch_rows):
        yield _canonical(raw, named, ctx, fmts)


def _parquet(path: Path, ctx: _Ctx, mapping: dict[str, str] | None,
             batch_rows: int) -> Iterator[pl.DataFrame]:
    if not path.is_file():
        raise FileNotFoundError(2, "No such file or directory", str(path))
    pf = pq.ParquetFile(path)
    header = list(pf.schema_arrow.names)
    cols = resolve_table(header, mapping, ctx.symbol, ctx.fail, "")
    named = {k: (tuple(header[i] for i in v) if isinstance(v, tuple) else header[v]) for k, v in cols.items()}
    for batch in pf.iter_batches(batch_size=batch_rows):
        frame = pl.from_arrow(batch)
        if frame.height:
            yield _canonical(frame, named, ctx)


def read_bars(path: PathLike, *, symbol: str | None = None, timeframe: str, format: str = "auto",
              server_tz: str | None = None, mapping: dict[str, str] | None = None) -> pl.DataFrame:
    """Read a whole bar file into one canonical frame (with ``source_row``); see :func:`iter_bars`."""
    return pl.concat(list(iter_bars(path, symbol=symbol, timeframe=timeframe, format=format,
                                    server_tz=server_tz, mapping=mapping)), rechunk=True)


def read_mt5_export(path: PathLike, *, symbol: str, timeframe: str, server_tz: str | None = None) -> pl.DataFrame:
    """Read a MetaTrader 5 terminal history export (``<DATE> <TIME> <OPEN> ...``, tab-separated).

    UTF-8, UTF-8 with BOM and UTF-16 (BOM) with LF or CRLF. D1/W1 files have no ``<TIME>`` column.
    ``<TICKVOL>`` is ``tick_volume``, ``<VOL>`` is ``real_volume``, ``<SPREAD>`` is ``spread``.
    ``server_tz`` is the broker's server clock (required, or ``MT5LAB_SERVER_TZ``); see
    :mod:`mt5lab.bars.clock`.
    """
    return read_bars(path, symbol=symbol, timeframe=timeframe, format="mt5", server_tz=server_tz)


def read_table(path: PathLike, *, symbol: str | None = None, timeframe: str, server_tz: str | None = None,
               mapping: dict[str, str] | None = None) -> pl.DataFrame:
    """Read a generic CSV or Parquet bar table (chosen by suffix).

    ``mapping`` maps canonical names to source columns, e.g. ``{"time": "Date", "close": "Close"}``.
    Unmapped columns match canonical names case-insensitively, or an alias: ``date``, ``datetime``,
    ``timestamp`` -> time; ``volume`` -> tick_volume; ``vol`` -> real_volume. Separate ``date`` and
    ``time`` columns are joined. A ``symbol`` column is used if present, else ``symbol`` is required.
    """
    fmt = "parquet" if Path(path).suffix.lower() in (".parquet", ".pq") else "csv"
    return read_bars(path, symbol=symbol, timeframe=timeframe, format=fmt, server_tz=server_tz,
                     mapping=mapping)
