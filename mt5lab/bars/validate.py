"""Validate canonical bars: hard rules (raise) and a report of gaps and suspicious rows (don't).

:func:`validate_bars` raises :class:`~mt5lab.errors.BarValidationError` for the first violated rule
in row order (on one row, the first rule in :data:`RULES` order), naming the source, the row (the
``source_row`` column if present, else the 1-based position) and the rule; the exception also
carries every violation (``.violations``, a frame) and ``.more`` (the next ones and a count, which
the CLI adds to its one error line). :func:`violations` returns that frame instead of raising. Schema problems (a missing
column, a naive ``time``) are reported without a row. All rules are polars expressions evaluated in
one pass, so a million rows validate in well under a second.

Alignment, on the server clock ``server_tz`` (the grid of every timeframe is anchored at the
server's midnight, see :mod:`mt5lab.bars.clock`): M1..H4 bars open on a multiple of their duration
since a server midnight; D1 bars at a server midnight; W1 bars at a server midnight on a Sunday (MT5's
convention) or a Monday (most equity sources); both are accepted. With ``server_tz="UTC"`` the grid is
the UTC one. After the rules, :mod:`mt5lab.bars.clock_check` refuses bars with real activity while
the symbol's market is closed: the sign of a wrong ``server_tz``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import polars as pl

from mt5lab.bars.calendars import check_calendar, find_gaps
from mt5lab.bars.clock import on_grid, resolve_server_tz
from mt5lab.bars.clock_check import check_clock
from mt5lab.bars.schema import to_polars
from mt5lab.catalog import BAR_COLUMNS, TIMEFRAMES
from mt5lab.errors import BarValidationError, Mt5LabWarning

PRICES = ("open", "high", "low", "close")
RULES: tuple[str, ...] = (
    "invalid symbol", "unknown timeframe", "mixed timeframes", "time null", "time not aligned",
    "price not finite", "price not positive", "high below low", "open outside low-high",
    "close outside low-high", "tick_volume null", "negative tick_volume", "negative real_volume",
    "negative spread", "duplicate time", "time not increasing",
)
"""Row rules, in the order they are reported for one row. ``duplicate time`` and ``time not
increasing`` compare a bar with the previous bar of the same (symbol, timeframe), in row order.
Schema rules (no row): ``missing column <c>``, ``non-numeric <c>``, ``time not datetime``,
``time not tz-aware``."""
OUTLIER_FACTOR = 10.0
"""A bar is suspicious when its abs log return exceeds this many times its symbol's median."""
_GAP_SCHEMA = {"symbol": pl.String, "timeframe": pl.String, "gap_start": pl.Datetime("us", "UTC"),
               "gap_end": pl.Datetime("us", "UTC"), "missing_bars": pl.Int64}
_SUSPICIOUS_SCHEMA = {"source_row": pl.Int64, "symbol": pl.String, "timeframe": pl.String,
                      "time": pl.Datetime("us", "UTC"), "reason": pl.String}


@dataclass
class ValidationReport:
    """What a valid frame contains: its extent, gaps against the calendar, and odd-looking rows."""

    rows: int
    symbols: tuple[str, ...]
    first_time: datetime | None
    last_time: datetime | None
    gaps: pl.DataFrame = field(repr=False)
    suspicious: pl.DataFrame = field(repr=False)
    server_tz: str = "UTC"  # the clock whose bar grid the bars were validated on

    def summary(self) -> dict[str, int]:
        """Plain numbers for notebooks and logs."""
        return {
            "rows": self.rows,
            "symbols": len(self.symbols),
            "gaps": self.gaps.height,
            "missing_bars": int(self.gaps["missing_bars"].sum() or 0),
            "suspicious": self.suspicious.height,
        }


def _symbol_ok(c: pl.Expr) -> pl.Expr:
    n = c.str.len_chars()
    return (c.is_not_null() & (n >= 1) & (n <= 64) & ~c.str.contains(r"[\x00-\x1f\x7f-\x9f]")
            & ~c.str.contains(r"^\s|\s$"))


@dataclass(frozen=True)
class _Layout:
    """Where each (symbol, timeframe) series sits in the frame, found without hashing every row.

    Usually each series is one contiguous block (one file, or files concatenated): then ``starts``
    are the block offsets and windows run over the integer block id ``_g``. Otherwise windows run
    over the string keys.
    """

    keys: pl.DataFrame  # symbol, timeframe of each series, in order of first appearance
    starts: list[int] | None  # block offsets when every series is contiguous

    def window(self, expr: pl.Expr) -> pl.Expr:
        if self.keys.height <= 1:
            return expr
        return expr.over("_g") if self.starts is not None else expr.over("symbol", "timeframe")

    @staticmethod
    def of(df: pl.DataFrame) -> tuple[_Layout, pl.DataFrame]:
        """The layout of ``df``, and ``df`` with the block id ``_g`` when windows need it."""
        sym, tf = pl.col("symbol"), pl.col("timeframe")
        start = (pl.int_range(pl.len()) == 0) | sym.ne_missing(sym.shift(1)) | tf.ne_missing(tf.shift(1))
        marks = df.select(_c=start)["_c"]
        idx = marks.arg_true()
        blocks = df.select(sym, tf).gather(idx)
        if blocks.height == 1:
            return _Layout(blocks, [0]), df
        if not blocks.is_duplicated().any():
            return _Layout(blocks, idx.cast(pl.Int64).to_list()), df.with_columns(_g=marks.cum_sum())
        return _Layout(blocks.unique(maintain_order=True), None), df

    def series(self, df: pl.DataFrame) -> list[tuple[str, str, pl.Series]]:
        """(symbol, timeframe, times) of each series."""
        if self.starts is not None:
            ends = [*self.starts[1:], df.height]
            return [(k[0], k[1], df["time"][a:b]) for k, a, b in zip(self.keys.rows(), self.starts, ends, strict=True)]
        grouped = df.group_by("symbol", "timeframe", maintain_order=True).agg("time")
        return [(grouped["symbol"][i], grouped["timeframe"][i], grouped["time"][i]) for i in range(grouped.height)]


def _rule_exprs(df: pl.DataFrame, layout: _Layout, server_tz: str) -> list[pl.Expr | None]:
    """One boolean 'violated' expression per rule, in :data:`RULES` order (None: cannot fail).

    Symbol and timeframe rules are decided on the distinct values, so they cost one ``unique``.
    """
    t, tf, sym = pl.col("time"), pl.col("timeframe"), pl.col("symbol")
    symbols, tfs = df["symbol"].unique(), df["timeframe"].unique()
    bad_symbols = symbols.to_frame().filter(~_symbol_ok(sym)).to_series()
    known = tfs.drop_nulls().filter(tfs.drop_nulls().is_in(list(TIMEFRAMES)))
    first_tf = df["timeframe"].drop_nulls().first()
    aligned = on_grid(t, known[0] if tfs.len() == 1 and known.len() == 1 else tf, server_tz)
    prev = pl.col("_prev")
    lo, hi = pl.col("low"), pl.col("high")
    return [
        (sym.is_null() | sym.is_in(bad_symbols.drop_nulls().implode())) if bad_symbols.len() else None,
        (tf.is_null() | ~tf.is_in(list(TIMEFRAMES))) if known.len() < tfs.len() else None,
        (tf != pl.lit(first_tf, pl.String)) if tfs.len() > 1 else None,
        t.is_null(),
        ~aligned,
        pl.any_horizontal(pl.col(p).is_null() | ~pl.col(p).cast(pl.Float64).is_finite() for p in PRICES),
        pl.any_horizontal(pl.col(p) <= 0 for p in PRICES),
        hi < lo,
        (pl.col("open") < lo) | (pl.col("open") > hi),
        (pl.col("close") < lo) | (pl.col("close") > hi),
        pl.col("tick_volume").is_null(),
        pl.col("tick_volume") < 0,
        pl.col("real_volume") < 0,
        pl.col("spread") < 0,
        t == prev,
        t < prev,
    ]


def _check_schema(df: pl.DataFrame, source: str) -> None:
    for c in BAR_COLUMNS:
        if c not in df.columns:
            raise BarValidationError(source, None, f"missing column {c}", f"columns: {', '.join(df.columns)}")
    for c in (*PRICES, "tick_volume", "real_volume", "spread"):
        if not (df.schema[c].is_numeric() or df.schema[c] == pl.Null):
            raise BarValidationError(source, None, f"non-numeric {c}", f"dtype {df.schema[c]}")
    tdt = df.schema["time"]
    if not isinstance(tdt, pl.Datetime):
        raise BarValidationError(source, None, "time not datetime", f"dtype {tdt}")
    if tdt.time_zone is None:
        raise BarValidationError(source, None, "time not tz-aware", "naive times; convert with server_tz")


def _first_violation(df: pl.DataFrame, source: str, layout: _Layout, server_tz: str) -> None:
    if df.is_empty():
        return
    exprs = [(k, e.fill_null(False)) for k, e in enumerate(_rule_exprs(df, layout, server_tz)) if e is not None]
    work = df.with_columns(_prev=layout.window(pl.col("time").shift(1)))
    firsts = work.select(pl.when(e.any()).then(e.arg_max()).alias(str(k)) for k, e in exprs).row(0)
    if all(pos is None for pos in firsts):
        return
    found = _all_violations(work, source, exprs)  # the failure path only: every violation, in order
    first = found.row(0, named=True)
    exc = BarValidationError(source, first["source_row"], first["rule"], detail_text(first, server_tz))
    exc.violations = found
    exc.more = violation_summary(found)
    raise exc


def _all_violations(work: pl.DataFrame, source: str, exprs: list) -> pl.DataFrame:
    """One row per (row, rule) violated, in row order, then :data:`RULES` order."""
    row = (pl.col("source_row").cast(pl.Int64) if "source_row" in work.columns
           else pl.int_range(1, pl.len() + 1, dtype=pl.Int64))
    values = [c for c in VALUE_COLUMNS if c in work.columns]
    flags = work.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("_pos"), row.alias("source_row"), *values,
                        *(e.alias(f"_r{k}") for k, e in exprs))
    parts = [flags.filter(pl.col(f"_r{k}")).select("_pos", "source_row", pl.lit(k, pl.Int64).alias("_k"), *values)
             for k, _ in exprs]
    found = pl.concat(parts).sort("_pos", "_k")
    return found.select(pl.lit(source, pl.String).alias("source"), "source_row",
                        pl.col("_k").map_elements(RULES.__getitem__, return_dtype=pl.String).alias("rule"),
                        *values)


VALUE_COLUMNS = ("symbol", "timeframe", "time", *PRICES, "tick_volume", "real_volume", "spread")
VIOLATIONS_SCHEMA = {"source": pl.String, "source_row": pl.Int64, "rule": pl.String}
MAX_LISTED = 5
"""An error's line names the first violation (with its values), this many more (row and rule) and
the total count."""


def detail_text(values: dict, server_tz: str = "UTC") -> str:
    """The values of one violating bar as an error shows them (``symbol='EURUSD', ..., close=1.1``)."""
    shown = {c: values[c] for c in ("symbol", "timeframe", "time", *PRICES) if c in values}
    detail = ", ".join(f"{c}={_shown(v)}" for c, v in shown.items())
    if values.get("rule") == "time not aligned":
        detail += f" (the {values.get('timeframe')} grid anchored at {server_tz} midnight: is the timeframe or server_tz wrong?)"
    return detail


def violation_summary(found: pl.DataFrame, limit: int = MAX_LISTED) -> str:
    """What follows the first violation on an error's one line: the next ``limit`` (row and rule)
    and the total, e.g. ``"; also row 3: close outside low-high, row 4: negative tick_volume
    (3 violations on 3 rows in all)"``; ``""`` when there is only one."""
    if found.height <= 1:
        return ""
    listed = [f"row {r['source_row']}: {r['rule']}" for r in found.slice(1, limit).iter_rows(named=True)]
    more = found.height - 1 - len(listed)
    return (f"; also {', '.join(listed)}{', ...' if more else ''} ({found.height} violations on "
            f"{found['source_row'].n_unique()} rows in all)")


def violations(bars: pl.DataFrame, *, source: str = "<frame>", calendar: str = "fx",
               server_tz: str | None = None) -> pl.DataFrame:
    """Every violation of the hard rules in ``bars``, not only the first: one row per (row, rule).

    Columns: ``source``, ``source_row`` (the ``source_row`` column if present, else the 1-based
    position; null for a schema rule), ``rule`` (:data:`RULES`, a schema rule, or the closed-market
    rule of :mod:`mt5lab.bars.clock_check`, reported once for its first bar), and the bar's values
    (``symbol``, ``timeframe``, ``time`` UTC, prices, volumes, spread, as present). Rows are in row
    order, then rule order. An empty frame means :func:`validate_bars` accepts the rules (it may
    still warn). Same arguments as :func:`validate_bars`.
    """
    tz = resolve_server_tz(server_tz, source, required=False)
    frame = to_polars(bars)
    try:
        _check_schema(frame, source)
    except BarValidationError as exc:
        return pl.DataFrame({"source": [source], "source_row": [None], "rule": [exc.rule]}, schema=VIOLATIONS_SCHEMA)
    try:
        validate_bars(frame, source=source, calendar=calendar, server_tz=tz)
    except BarValidationError as exc:
        found = getattr(exc, "violations", None)
        if found is not None:
            return found
        return pl.DataFrame({"source": [source], "source_row": [exc.row], "rule": [exc.rule]},
                            schema=VIOLATIONS_SCHEMA)
    return pl.DataFrame(schema=VIOLATIONS_SCHEMA)


def _shown(v) -> str:
    """A value for a one-line message: ISO times, and a long (hostile) string cut to 40 characters."""
    if isinstance(v, datetime):
        return v.isoformat()
    text = repr(v)
    return text if len(text) <= 42 else f"{text[:40]}...({len(v) if isinstance(v, str) else len(text)} chars)"


def _suspicious(df: pl.DataFrame, layout: _Layout) -> pl.DataFrame:
    """Rows that pass the rules but look odd, one row per (bar, reason)."""
    row = pl.col("source_row") if "source_row" in df.columns else pl.int_range(1, pl.len() + 1)
    absret = layout.window((pl.col("close") / pl.col("close").shift(1)).log().abs())
    flagged = df.with_columns(source_row=row.cast(pl.Int64), _r=absret).with_columns(
        _m=layout.window(pl.col("_r").median()))
    outlier = f"abs log return > {OUTLIER_FACTOR:g}x symbol median"
    zero_range = pl.col("high") == pl.col("low")
    jump = (pl.col("_m") > 0) & (pl.col("_r") > OUTLIER_FACTOR * pl.col("_m"))  # flat series: no outliers
    return (
        flagged.filter(zero_range | jump.fill_null(False))
        .select(
            *(c for c in _SUSPICIOUS_SCHEMA if c != "reason"),
            reason=pl.concat_list(
                pl.when(zero_range).then(pl.lit("zero range")),
                pl.when(jump).then(pl.lit(outlier)),
            ).list.drop_nulls(),
        )
        .explode("reason")
        .cast(_SUSPICIOUS_SCHEMA)
    )


def _check_spacing(series, source: str) -> None:
    """Warn when a series' typical spacing is another timeframe (an H1 file read as M30 is aligned
    and valid, but half its bars would be gaps)."""
    for sym, tf, times in series:
        step = TIMEFRAMES.get(tf)
        if step is None or step >= timedelta(days=1) or times.len() < 20:
            continue
        typical = times.diff().drop_nulls().median()
        other = next((name for name, d in TIMEFRAMES.items() if d == typical and d > step), None)
        if other is not None:
            warnings.warn(f"{source}: {sym} bars are typically {other} apart, read as {tf}: is the timeframe "
                          f"{other}?", Mt5LabWarning, stacklevel=3)


def validate_bars(bars: pl.DataFrame, *, source: str = "<frame>", calendar: str = "fx",
                  server_tz: str | None = None) -> ValidationReport:
    """Check ``bars`` (canonical schema, optional ``source_row``) and report extent, gaps, oddities.

    ``server_tz``: the broker's server clock the bars were stamped on (default ``MT5LAB_SERVER_TZ``,
    else UTC): alignment and the calendar's expected bars use its grid, and bars active while the
    market is closed are refused (a wrong clock). Raises BarValidationError (source, row, rule).
    """
    cal = check_calendar(calendar)
    tz = resolve_server_tz(server_tz, source, required=False)
    bars = to_polars(bars)
    _check_schema(bars, source)
    if bars.schema["time"].time_zone != "UTC":  # weekdays and days are UTC ones
        bars = bars.with_columns(pl.col("time").dt.convert_time_zone("UTC"))
    if bars.is_empty():
        return ValidationReport(0, (), None, None, pl.DataFrame(schema=_GAP_SCHEMA),
                                pl.DataFrame(schema=_SUSPICIOUS_SCHEMA), tz)
    layout, work = _Layout.of(bars)
    _first_violation(work, source, layout, tz)
    check_clock(work, source, cal, tz)
    # One bar per series (a live bar close) has no gap and no spacing: no per-series work at all.
    series = layout.series(bars) if layout.keys.height < bars.height else []
    gaps = [
        find_gaps(times, tf, cal, tz)
        .select(pl.lit(sym, pl.String).alias("symbol"), pl.lit(tf, pl.String).alias("timeframe"), pl.all())
        for sym, tf, times in series
        if times.len() > 1  # one bar has no gap (find_gaps returns none)
    ]
    _check_spacing(series, source)
    t = bars["time"]
    return ValidationReport(
        rows=bars.height,
        symbols=tuple(sorted(set(layout.keys["symbol"].to_list()))),
        first_time=t.min(),
        last_time=t.max(),
        gaps=(pl.concat(gaps) if gaps else pl.DataFrame(schema=_GAP_SCHEMA)).cast(_GAP_SCHEMA),
        suspicious=_suspicious(work, layout),
        server_tz=tz,
    )

