"""Data quality for people: what validation found, as tables a notebook shows and records.

- :func:`inspect_source` reads bars (a bundled sample or a file) and validates them *without* raising:
  a rejected file comes back with its rejection (file, row, rule), so a notebook can show it and mark
  the row on a chart. Ingest stays all or nothing: :func:`ingest_inspected` refuses a rejected source.
- :func:`gap_table` and :func:`calendar_table` turn a :class:`~mt5lab.bars.validate.ValidationReport` into
  the gap and calendar tables.
- :func:`quality_over_time` counts bars, missing bars, suspicious rows and null feature values per
  period, for the monitoring notebook.

No look-ahead concern here: nothing in this module feeds a feature or a label.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import polars as pl

from mt5lab.errors import BarValidationError

REJECTED_SCHEMA = {"source_row": pl.Int64, "time": pl.Datetime("us", "UTC"), "rule": pl.String,
                   "detail": pl.String}


@dataclass
class Inspection:
    """Bars as read from one source and what validation said about them."""

    source: str
    calendar: str
    bars: pl.DataFrame
    report: object | None  # mt5lab.bars.validate.ValidationReport, None when rejected
    rejected: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=REJECTED_SCHEMA))

    @property
    def ok(self) -> bool:
        return self.report is not None

    @property
    def suspicious(self) -> pl.DataFrame:
        """Rows that pass the rules but look odd (zero range, outsized return); empty if rejected."""
        if self.report is None:
            return pl.DataFrame(schema={"source_row": pl.Int64, "time": pl.Datetime("us", "UTC"),
                                        "reason": pl.String})
        return self.report.suspicious

    def summary(self) -> dict:
        """Plain numbers: rows, gaps, missing bars, suspicious and rejected rows, extent."""
        rejected = self.rejected["source_row"].n_unique() if self.rejected.height else 0
        base = {"source": self.source, "calendar": self.calendar, "rows": self.bars.height,
                "rejected": rejected, "violations": self.rejected.height}
        if self.report is None:
            return base | {"gaps": None, "missing_bars": None, "suspicious": None,
                           "rule": self.rejected["rule"][0] if self.rejected.height else None,
                           "rules": sorted(set(self.rejected["rule"].to_list()))}
        s = self.report.summary()
        return base | {"gaps": s["gaps"], "missing_bars": s["missing_bars"],
                       "suspicious": s["suspicious"], "first_time": self.report.first_time,
                       "last_time": self.report.last_time}


def read_source(path: str = "", *, symbol: str = "GOOG", timeframe: str = "D1", format: str = "auto",
                server_tz: str | None = None) -> tuple[pl.DataFrame, str]:
    """Bars of a bundled sample (``path == ""``, ``symbol`` names it) or of a file (a relative path is
    taken against the checkout, as every notebook path is), and a source name."""
    if not path:
        from mt5lab.bars.samples import SAMPLES, load_sample

        if symbol.upper() not in SAMPLES:
            raise ValueError(f"no bundled sample {symbol!r}; samples: {', '.join(SAMPLES)} (or give a path)")
        return load_sample(symbol), f"sample:{symbol.upper()}"
    from mt5lab.bars.readers import read_bars
    from mt5lab.config import project_root

    file = Path(path).expanduser()
    file = file if file.is_absolute() else project_root() / file  # notebooks run in notebooks/: the checkout
    return read_bars(file, symbol=symbol or None, timeframe=timeframe,
                     format=format, server_tz=server_tz or None), str(path)  # "": MT5LAB_SERVER_TZ


def default_calendar(path: str, symbol: str, calendar: str = "") -> str:
    """The calendar to check gaps against: as given, else the sample's, else ``fx``."""
    if calendar:
        return calendar
    from mt5lab.bars.samples import SAMPLES

    return SAMPLES[symbol.upper()].calendar if not path and symbol.upper() in SAMPLES else "fx"


def inspect_source(path: str = "", *, symbol: str = "GOOG", timeframe: str = "D1", format: str = "auto",
                   server_tz: str | None = None, calendar: str = "") -> Inspection:
    """Read and validate one source; a rule violation is returned as a rejected row, not raised.

    The rejected table holds *every* violation of the hard rules (one row per row and rule, in row
    order: :func:`mt5lab.bars.validate.violations`), so one run shows all that needs fixing. A file
    that cannot be read at all is returned with no bars and the reader's rejection.
    """
    from mt5lab.bars.validate import validate_bars

    cal = default_calendar(path, symbol, calendar)
    try:
        bars, source = read_source(path, symbol=symbol, timeframe=timeframe, format=format,
                                   server_tz=server_tz)
    except BarValidationError as exc:
        empty = pl.DataFrame(schema={"source_row": pl.Int64, "time": pl.Datetime("us", "UTC")})
        return Inspection(str(path), cal, empty, None, _rejection(exc, empty))
    try:
        report = validate_bars(bars, source=source, calendar=cal,
                               server_tz="UTC" if source.startswith("sample:") else server_tz or None)
    except BarValidationError as exc:
        return Inspection(source, cal, bars, None, _rejection(exc, bars))
    return Inspection(source, cal, bars, report)


def _rejection(exc: BarValidationError, bars: pl.DataFrame) -> pl.DataFrame:
    """Every violation the validator found (``exc.violations``), else the one it names."""
    found = getattr(exc, "violations", None)
    if found is not None and found.height:
        from mt5lab.bars.validate import detail_text

        return pl.DataFrame({
            "source_row": found["source_row"], "time": found["time"] if "time" in found.columns else None,
            "rule": found["rule"],
            "detail": [detail_text(r) for r in found.iter_rows(named=True)],
        }, schema=REJECTED_SCHEMA)
    time = None
    if exc.row is not None and bars.height:
        rows = (bars.filter(pl.col("source_row") == exc.row) if "source_row" in bars.columns
                else bars.slice(exc.row - 1, 1))
        time = rows["time"][0] if rows.height else None
    return pl.DataFrame({"source_row": [exc.row], "time": [time], "rule": [exc.rule],
                         "detail": [exc.detail]}, schema=REJECTED_SCHEMA)


def ingest_inspected(store, inspection: Inspection, enabled: bool = True) -> dict:
    """Upsert the inspected bars (all or nothing); a rejected source writes nothing and says so."""
    from mt5lab.bars.ingest import write
    from mt5lab.catalog import BAR_COLUMNS

    if not (enabled and inspection.ok):
        return {"written": False, "inserted": 0, "updated": 0, "unchanged": 0}
    res = write(store, inspection.bars.select(BAR_COLUMNS), [inspection.report])
    return {"written": True, "inserted": res.write.inserted, "updated": res.write.updated,
            "unchanged": res.write.unchanged}


def gap_table(inspection: Inspection) -> pd.DataFrame:
    """One row per gap with weekdays and length, so a person can tell a holiday from a lost download."""
    g = inspection.report.gaps if inspection.report is not None else pl.DataFrame()
    if g.height == 0:
        return pd.DataFrame(columns=["symbol", "timeframe", "gap_start (UTC)", "gap_end (UTC)", "weekdays",
                                     "missing_bars"])
    return g.select(
        "symbol", "timeframe",
        pl.col("gap_start").dt.strftime("%Y-%m-%d %H:%M").alias("gap_start (UTC)"),
        pl.col("gap_end").dt.strftime("%Y-%m-%d %H:%M").alias("gap_end (UTC)"),
        pl.when(pl.col("gap_start").dt.date() == pl.col("gap_end").dt.date())
        .then(pl.col("gap_start").dt.strftime("%a"))
        .otherwise(pl.col("gap_start").dt.strftime("%a") + "-" + pl.col("gap_end").dt.strftime("%a"))
        .alias("weekdays"),
        "missing_bars",
    ).to_pandas()


def calendar_table(inspection: Inspection) -> pd.DataFrame:
    """Per symbol and timeframe: calendar, extent, bars present and expected, coverage, gaps."""
    from mt5lab.bars.calendars import expected_bar_opens, open_expr

    rep, rows = inspection.report, []
    if rep is None:
        return pd.DataFrame()
    for (sym, tf), g in inspection.bars.group_by("symbol", "timeframe", maintain_order=True):
        t = g["time"]
        expected = expected_bar_opens(t.min(), t.max(), tf, inspection.calendar)
        gaps = rep.gaps.filter((pl.col("symbol") == sym) & (pl.col("timeframe") == tf))
        closed = g.select((~open_expr(pl.col("time"), inspection.calendar)).sum()).item()
        rows.append({
            "symbol": sym, "timeframe": tf, "calendar": inspection.calendar,
            "first bar (UTC)": t.min(), "last bar (UTC)": t.max(), "bars": g.height,
            "expected bars": expected.len(), "coverage %": round(100 * g.height / max(expected.len(), 1), 2),
            "gaps": gaps.height, "missing bars": int(gaps["missing_bars"].sum() or 0),
            "bars while closed": int(closed),
            "suspicious": rep.suspicious.filter(pl.col("symbol") == sym).height,
        })
    return pd.DataFrame(rows)


def quality_over_time(bars: pl.DataFrame, report, features: pl.DataFrame | None = None,
                      every: str = "1mo") -> pl.DataFrame:
    """Counts per period (``every``: a polars duration such as ``1w``, ``1mo``, ``1q``).

    Columns: ``period`` (start, UTC), ``bars``, ``missing_bars`` (gaps by the period of their first
    missing bar), ``suspicious``, and with ``features`` also ``null_share`` (share of null feature
    values among the 42 per row, warm-up included).
    """
    from mt5lab.catalog import FEATURE_NAMES

    def per(frame: pl.DataFrame, col: str, agg: pl.Expr, name: str) -> pl.DataFrame:
        if frame.height == 0:
            return pl.DataFrame(schema={"period": pl.Datetime("us", "UTC"), name: pl.Float64})
        return (frame.group_by(pl.col(col).dt.truncate(every).alias("period")).agg(agg.alias(name)))

    out = per(bars, "time", pl.len(), "bars")
    out = out.join(per(report.gaps, "gap_start", pl.col("missing_bars").sum(), "missing_bars"),
                   on="period", how="full", coalesce=True)
    out = out.join(per(report.suspicious, "time", pl.len(), "suspicious"), on="period", how="full",
                   coalesce=True)
    if features is not None:
        nulls = pl.sum_horizontal(pl.col(c).is_null() for c in FEATURE_NAMES) / len(FEATURE_NAMES)
        out = out.join(per(features, "time", nulls.mean(), "null_share"), on="period", how="left")
    counts = ["bars", "missing_bars", "suspicious"]
    return out.with_columns(pl.col(c).fill_null(0).cast(pl.Int64) for c in counts).sort("period")


def store_quality(store, symbol: str, timeframe: str, every: str = "1mo", calendar: str = "") -> pl.DataFrame:
    """:func:`quality_over_time` for one stored symbol: its bars re-validated, its feature rows."""
    from mt5lab.bars.calendars import symbol_calendar
    from mt5lab.bars.validate import validate_bars

    bars = store.read_bars(timeframe, [symbol])
    if bars.height == 0:
        raise ValueError(f"no {timeframe} bars for {symbol!r} in the store")
    report = validate_bars(bars, source=f"store:{symbol} {timeframe}",
                           calendar=calendar or symbol_calendar(symbol))
    return quality_over_time(bars, report, store.read_features(timeframe, [symbol]), every)


def quality_totals(q: pl.DataFrame) -> dict:
    """Sums over all periods, and the worst period's null share."""
    out = {"periods": q.height, **{c: int(q[c].sum()) for c in ("bars", "missing_bars", "suspicious")}}
    if "null_share" in q.columns:
        out["max_null_share"] = round(float(q["null_share"].max() or 0.0), 4)
    return out
