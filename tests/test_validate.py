"""validate_bars: every rule by its exact name and row, gaps, suspicious rows, samples, speed."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from mt5lab.bars.calendars import expected_bar_opens
from mt5lab.bars.samples import load_sample
from mt5lab.bars.schema import canonical
from mt5lab.bars.validate import RULES, ValidationReport, validate_bars
from mt5lab.errors import BarValidationError


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


MONDAY = utc(2024, 1, 8)


def bars(n: int = 8, *, symbol: str = "EURUSD", timeframe: str = "H1", start: datetime = MONDAY,
         step: timedelta = timedelta(hours=1), source_rows: bool = True) -> pl.DataFrame:
    """``n`` valid, gently rising bars (Monday 2024-01-08 onwards by default)."""
    close = [1.10 + 0.001 * i for i in range(n)]
    df = canonical(pl.DataFrame({
        "symbol": [symbol] * n, "timeframe": [timeframe] * n,
        "time": [start + i * step for i in range(n)],
        "open": [c - 0.0005 for c in close], "high": [c + 0.001 for c in close],
        "low": [c - 0.001 for c in close], "close": close,
        "tick_volume": [100] * n, "spread": [2] * n, "real_volume": [0] * n,
    }))
    return df.with_columns(source_row=pl.int_range(101, 101 + n, dtype=pl.Int64)) if source_rows else df


def set_row(df: pl.DataFrame, i: int, **values) -> pl.DataFrame:
    """``df`` with row ``i`` (0-based) changed."""
    hit = pl.int_range(pl.len()) == i
    return df.with_columns(
        pl.when(hit).then(pl.lit(v, dtype=df.schema[c])).otherwise(pl.col(c)).alias(c) for c, v in values.items()
    )


def expect(rule: str, row: int | None, df: pl.DataFrame, **kw) -> BarValidationError:
    with pytest.raises(BarValidationError) as info:
        validate_bars(df, source="feed.csv", **kw)
    err = info.value
    assert err.rule == rule, str(err)
    assert err.row == row, str(err)
    assert str(err).startswith(f"feed.csv: row {row}: {rule}" if row is not None else f"feed.csv: {rule}")
    return err


def test_valid_frame_report():
    report = validate_bars(bars(), source="feed.csv")
    assert isinstance(report, ValidationReport)
    assert (report.rows, report.symbols) == (8, ("EURUSD",))
    assert report.first_time == utc(2024, 1, 8) and report.last_time == utc(2024, 1, 8, 7)
    assert report.gaps.is_empty() and report.suspicious.is_empty()
    assert report.summary() == {"rows": 8, "symbols": 1, "gaps": 0, "missing_bars": 0, "suspicious": 0}
    assert all(type(v) is int for v in report.summary().values())


# --- every rule, by name and row -------------------------------------------------------------------

@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"symbol": ""}, "invalid symbol"),
        ({"symbol": " EURUSD"}, "invalid symbol"),
        ({"symbol": "EURUSD\t"}, "invalid symbol"),
        ({"symbol": "EUR\x00USD"}, "invalid symbol"),
        ({"symbol": "EUR\nUSD"}, "invalid symbol"),
        ({"symbol": "EUR\x85USD"}, "invalid symbol"),  # C1 control character
        ({"symbol": "X" * 65}, "invalid symbol"),
        ({"symbol": None}, "invalid symbol"),
        ({"timeframe": "H2"}, "unknown timeframe"),
        ({"timeframe": None}, "unknown timeframe"),
        ({"timeframe": "M1"}, "mixed timeframes"),
        ({"time": None}, "time null"),
        ({"time": utc(2024, 1, 8, 3, 30)}, "time not aligned"),
        ({"open": math.nan}, "price not finite"),
        ({"high": math.inf}, "price not finite"),
        ({"close": None}, "price not finite"),
        ({"low": 0.0}, "price not positive"),
        ({"open": -1.0, "low": -2.0}, "price not positive"),
        ({"high": 1.0}, "high below low"),
        ({"open": 1.5}, "open outside low-high"),
        ({"open": 1.0}, "open outside low-high"),
        ({"close": 1.5}, "close outside low-high"),
        ({"close": 1.0}, "close outside low-high"),
        ({"tick_volume": None}, "tick_volume null"),
        ({"tick_volume": -1}, "negative tick_volume"),
        ({"real_volume": -5}, "negative real_volume"),
        ({"spread": -1}, "negative spread"),
        ({"time": utc(2024, 1, 8, 1)}, "duplicate time"),
        ({"time": utc(2024, 1, 8, 0)}, "time not increasing"),
    ],
)
def test_each_rule_names_its_row(change, rule):
    assert rule in RULES
    df = set_row(bars(), 2, **change)
    expect(rule, 103, df)  # from source_row
    expect(rule, 3, df.drop("source_row"))  # else the 1-based position


def test_allowed_symbol_names():
    for name in ("EUR/USD", "日本株225", "'; DROP TABLE bars; --", "X" * 64, "a", "US 500", "BTCUSD.m"):
        assert validate_bars(bars(symbol=name), source="feed.csv").symbols == (name,)


def test_alignment_per_timeframe():
    validate_bars(bars(timeframe="M15", step=timedelta(minutes=15)))
    validate_bars(bars(timeframe="H4", step=timedelta(hours=4)))
    expect("time not aligned", 101, bars(timeframe="H4", start=utc(2024, 1, 8, 1), step=timedelta(hours=4)))
    validate_bars(bars(timeframe="D1", start=utc(2024, 1, 8), step=timedelta(days=1), n=5))
    expect("time not aligned", 101, bars(timeframe="D1", start=utc(2024, 1, 8, 22), step=timedelta(days=1)))
    # W1: midnight UTC on a Sunday (MT5) or on a Monday; a Tuesday or 22:00 Sunday is not aligned
    validate_bars(bars(timeframe="W1", start=utc(2024, 1, 7), step=timedelta(weeks=1)))
    validate_bars(bars(timeframe="W1", start=utc(2024, 1, 8), step=timedelta(weeks=1)), calendar="equity")
    expect("time not aligned", 101, bars(timeframe="W1", start=utc(2024, 1, 9), step=timedelta(weeks=1)))
    expect("time not aligned", 101, bars(timeframe="W1", start=utc(2024, 1, 7, 22), step=timedelta(weeks=1)))


def test_first_violation_in_row_order_and_rule_order_within_a_row():
    df = set_row(set_row(bars(), 5, symbol=""), 3, spread=-1)  # row 4 breaks a late rule, row 6 an early one
    expect("negative spread", 104, df)
    df = set_row(bars(), 3, spread=-1, open=math.nan)  # one row, two rules: the earlier rule in RULES
    expect("price not finite", 104, df)


def test_time_order_is_per_symbol_and_timeframe():
    a, b = bars(symbol="A"), bars(symbol="B")
    interleaved = pl.concat([a, b]).sort("time", "symbol")  # same times in two symbols: fine
    report = validate_bars(interleaved)
    assert report.symbols == ("A", "B") and report.rows == 16
    duplicated = pl.concat([a, b, a.slice(7, 1)])  # A's last bar repeated after all of B
    expect("duplicate time", 108, duplicated)
    expect("time not increasing", 105, pl.concat([a, b, a.slice(4, 1)]))  # an older bar of A, not the last
    swapped = pl.concat([a.slice(0, 3), b, a.slice(3)]).pipe(set_row, 11, time=utc(2024, 1, 8, 1))
    expect("time not increasing", 104, swapped)  # row 11 is A's 4th bar, now before its 3rd


def test_schema_rules():
    expect("missing column close", None, bars().drop("close"))
    naive = bars().with_columns(pl.col("time").dt.replace_time_zone(None))
    expect("time not tz-aware", None, naive)
    expect("time not datetime", None, bars().with_columns(pl.col("time").cast(pl.String)))
    expect("non-numeric open", None, bars().with_columns(pl.col("open").cast(pl.String)))


def test_non_utc_zone_is_accepted_and_empty_frame():
    athens = bars().with_columns(pl.col("time").dt.convert_time_zone("Europe/Athens"))
    assert validate_bars(athens).first_time == utc(2024, 1, 8)
    # W1 on Sunday 00:00 UTC is Saturday evening in New York: alignment is judged in UTC
    weekly = bars(timeframe="W1", start=utc(2024, 1, 7), step=timedelta(weeks=1))
    validate_bars(weekly.with_columns(pl.col("time").dt.convert_time_zone("America/New_York")))
    empty = validate_bars(bars().clear())
    assert empty.summary() == {"rows": 0, "symbols": 0, "gaps": 0, "missing_bars": 0, "suspicious": 0}


def test_unknown_calendar_is_refused():
    from mt5lab.errors import ConfigError

    with pytest.raises(ConfigError):
        validate_bars(bars(), calendar="lse")


# --- gaps and suspicious rows ----------------------------------------------------------------------

def h1_fx_fortnight(symbol: str = "EURUSD") -> pl.DataFrame:
    times = expected_bar_opens(utc(2024, 1, 7), utc(2024, 1, 20), "H1", "fx")
    n = times.len()
    return canonical(pl.DataFrame({
        "symbol": [symbol] * n, "timeframe": ["H1"] * n, "time": times, "open": 1.1, "high": 1.2, "low": 1.0,
        "close": [1.1 + 0.0001 * (i % 7) for i in range(n)], "tick_volume": 10, "spread": 1, "real_volume": 0,
    }))


def test_h1_gaps_in_the_report():
    full = h1_fx_fortnight()
    assert validate_bars(full).gaps.is_empty()  # the weekend is not a gap on fx
    report = validate_bars(full.filter(pl.col("time").dt.day() != 10))  # no bars on Wednesday
    assert report.gaps.to_dicts() == [{"symbol": "EURUSD", "timeframe": "H1", "gap_start": utc(2024, 1, 10, 0),
                                       "gap_end": utc(2024, 1, 10, 23), "missing_bars": 24}]
    assert report.summary()["missing_bars"] == 24
    # on a 24x7 calendar the weekend is a gap
    assert validate_bars(full, calendar="24x7").summary()["gaps"] == 1


def test_d1_gaps_per_symbol():
    days = expected_bar_opens(utc(2024, 1, 1), utc(2024, 1, 31), "D1", "fx")
    n = days.len()
    one = pl.DataFrame({"timeframe": ["D1"] * n, "time": days, "open": 1.1, "high": 1.2, "low": 1.0,
                        "close": 1.15, "tick_volume": 10})
    frame = canonical(pl.concat([
        one.with_columns(symbol=pl.lit("A")),
        one.with_columns(symbol=pl.lit("B")).filter(pl.col("time") != utc(2024, 1, 17)),
    ]))
    gaps = validate_bars(frame).gaps
    assert gaps.select("symbol", "gap_start", "missing_bars").to_dicts() == [
        {"symbol": "B", "gap_start": utc(2024, 1, 17), "missing_bars": 1}]


def test_suspicious_rows():
    df = bars(n=30)
    df = set_row(df, 4, high=df["close"][4], low=df["close"][4], open=df["close"][4])  # zero range
    df = set_row(df, 20, close=1.5, high=1.5)  # a jump far beyond the usual return
    sus = validate_bars(df).suspicious
    assert sus.columns == ["source_row", "symbol", "timeframe", "time", "reason"]
    got = {(r["source_row"], r["reason"]) for r in sus.to_dicts()}
    assert (105, "zero range") in got
    assert (121, "abs log return > 10x symbol median") in got  # the jump up
    assert (122, "abs log return > 10x symbol median") in got  # and back down
    assert len(got) == 3
    flat = bars(n=30).with_columns(close=pl.lit(1.1), open=pl.lit(1.1), high=pl.lit(1.2), low=pl.lit(1.0))
    flat = set_row(flat, 10, close=1.11)  # median abs return is 0: a single move is not an outlier
    assert validate_bars(flat).suspicious.is_empty()


# --- real samples and speed ------------------------------------------------------------------------

# The only gaps left once the calendars know the regular holidays: NYSE's ad-hoc closures (President
# Ford's national day of mourning, 2 January 2007; Hurricane Sandy, 29-30 October 2012). FX's only
# weekday closures, Christmas Day and New Year's Day, are holidays of the fx calendar.
@pytest.mark.parametrize(("name", "calendar", "gap_starts", "missing"), [
    ("GOOG", "equity", [datetime(2007, 1, 2, tzinfo=UTC), datetime(2012, 10, 29, tzinfo=UTC)], 3),
    ("EURUSD", "fx", [], 0)])
def test_real_samples_validate(name, calendar, gap_starts, missing, capsys):
    report = validate_bars(load_sample(name), source=name, calendar=calendar)
    summary = report.summary()
    with capsys.disabled():
        print(f"\n{name} ({calendar}): {summary}")
    assert summary["rows"] == load_sample(name).height
    assert report.gaps["gap_start"].to_list() == gap_starts
    assert summary["missing_bars"] == missing


def test_one_million_rows_validate_fast():
    n = 1_000_000
    times = pl.datetime_range(utc(2020, 1, 1), utc(2020, 1, 1) + timedelta(minutes=n - 1), "1m",
                              time_zone="UTC", eager=True)
    close = pl.Series([1.1, 1.1001, 1.1002, 1.1001] * (n // 4))
    df = canonical(pl.DataFrame({"symbol": "EURUSD", "timeframe": "M1", "time": times, "open": close,
                                 "high": close + 0.0002, "low": close - 0.0002, "close": close,
                                 "tick_volume": 5, "spread": 1, "real_volume": 0}))
    validate_bars(df.head(1000))  # warm up
    cpu, wall = time.process_time(), time.perf_counter()
    report = validate_bars(df)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"1M rows: {wall:.3f}s wall, {cpu:.3f}s CPU")
    assert report.rows == n
    # CPU time, not wall time: the machine is shared, but the work done is what this budget is about
    assert cpu < 1.0


# -- every violation, not only the first --------------------------------------------------------

def test_violations_lists_every_row_and_rule_in_order():
    from mt5lab.bars.validate import violations

    df = set_row(bars(), 1, high=1.0, low=1.2)  # row 102: high below low (open and close outside too)
    df = set_row(df, 4, tick_volume=-1)  # row 105
    df = set_row(df, 6, close=9.9)  # row 107: close above high
    found = violations(df, source="f.csv")
    assert found.select("source_row", "rule").rows() == [
        (102, "high below low"), (102, "open outside low-high"), (102, "close outside low-high"),
        (105, "negative tick_volume"), (107, "close outside low-high")]
    assert set(found["source"]) == {"f.csv"}
    assert found.filter(pl.col("source_row") == 107)["close"].to_list() == [9.9]
    assert found.filter(pl.col("source_row") == 105)["time"].to_list() == [MONDAY + timedelta(hours=4)]
    assert violations(bars()).height == 0


def test_the_error_names_the_first_and_counts_all():
    df = set_row(set_row(set_row(bars(), 2, tick_volume=-1), 5, tick_volume=-2), 7, spread=-3)
    e = expect("negative tick_volume", 103, df)
    assert e.violations["source_row"].to_list() == [103, 106, 108]
    assert e.more == "; also row 106: negative tick_volume, row 108: negative spread (3 violations on 3 rows in all)"
    assert "\n" not in str(e) + e.more


def test_the_error_lists_at_most_five_more():
    df = bars(12)
    for i in range(10):
        df = set_row(df, i, tick_volume=-1)
    e = expect("negative tick_volume", 101, df)
    assert e.more.count("row ") == 5 and e.more.endswith(", ... (10 violations on 10 rows in all)")


def test_violations_of_a_schema_rule_have_no_row():
    from mt5lab.bars.validate import violations

    found = violations(bars().drop("close"))
    assert found.rows() == [("<frame>", None, "missing column close")]


def test_cli_error_one_line_first_violation_and_count_nothing_written(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    path = tmp_path / "three_bad.csv"
    path.write_text("time,open,high,low,close,tick_volume\n"
                    "2024-01-08 10:00,1.1,1.2,1.0,1.1,5\n"
                    "2024-01-08 11:00,1.1,1.2,1.0,1.1,-5\n"      # row 2
                    "2024-01-08 12:00,1.1,1.2,1.0,1.1,5\n"
                    "2024-01-08 13:00,1.1,1.2,1.0,1.1,-6\n"      # row 4
                    "2024-01-08 14:00,1.1,1.2,1.0,1.1,-7\n")     # row 5
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MT5LAB_")} | {
        "MT5LAB_DATA_DIR": str(data), "TQDM_DISABLE": "1"}
    out = subprocess.run([sys.executable, "-m", "mt5lab.cli", "ingest", str(path), "--symbol", "EURUSD",
                          "--timeframe", "H1", "--server-tz", "UTC"], capture_output=True, text=True, env=env,
                         cwd=Path(__file__).resolve().parents[1], timeout=300)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"error: {path}: row 2: negative tick_volume: symbol='EURUSD'")
    assert lines[0].endswith("; also row 4: negative tick_volume, row 5: negative tick_volume "
                             "(3 violations on 3 rows in all)")
    assert not list(data.rglob("*.parquet"))
