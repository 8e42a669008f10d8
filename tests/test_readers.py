"""Readers: real files in tmp_path for every format, encoding, time zone and failure mode."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mt5lab.bars.clock import NY_CLOSE
from mt5lab.bars.readers import iter_bars, read_bars, read_mt5_export, read_table
from mt5lab.bars.samples import load_sample, sample_path
from mt5lab.bars.validate import validate_bars
from mt5lab.catalog import BAR_SCHEMA
from mt5lab.errors import BarValidationError, ConfigError

MT5_HEADER = "<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>"
MT5_D1_HEADER = "<DATE>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>"
CANONICAL = {**BAR_SCHEMA, "source_row": pl.Int64()}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def write(path: Path, lines: list[str], *, encoding: str = "utf-8", newline: str = "\n",
          bom: bytes = b"") -> Path:
    path.write_bytes(bom + (newline.join(lines) + newline).encode(encoding))
    return path


def mt5_rows(date: str, hours: list[str]) -> list[str]:
    return [f"{date}\t{h}\t1.1000\t1.1010\t1.0990\t1.1005\t{100 + i}\t0\t{i + 1}" for i, h in enumerate(hours)]


def expect_error(match_rule: str, row: int | None, call) -> BarValidationError:
    with pytest.raises(BarValidationError) as info:
        call()
    err = info.value
    assert err.rule == match_rule, str(err)
    assert err.row == row, str(err)
    return err


# --- MT5 exports -----------------------------------------------------------------------------------

def test_mt5_intraday_with_time_column(tmp_path):
    path = write(tmp_path / "EURUSD_H1.csv", [MT5_HEADER, *mt5_rows("2024.01.02", ["00:00:00", "01:00:00", "02:00"])])
    bars = read_mt5_export(path, symbol="EURUSD", timeframe="H1", server_tz="UTC")
    assert bars.schema == CANONICAL
    assert bars["time"].to_list() == [utc(2024, 1, 2, 0), utc(2024, 1, 2, 1), utc(2024, 1, 2, 2)]
    assert bars["tick_volume"].to_list() == [100, 101, 102]
    assert bars["real_volume"].to_list() == [0, 0, 0]
    assert bars["spread"].to_list() == [1, 2, 3]
    assert bars["source_row"].to_list() == [1, 2, 3]
    assert bars["symbol"].unique().to_list() == ["EURUSD"] and bars["timeframe"].unique().to_list() == ["H1"]
    assert bars["close"][0] == pytest.approx(1.1005)
    validate_bars(bars, source=path.name)


def test_mt5_daily_bar_opens_at_the_server_midnight(tmp_path):
    lines = [MT5_D1_HEADER, "2024.01.02\t1.1\t1.2\t1.0\t1.15\t5000\t7\t12",
             "2024.01.03\t1.15\t1.25\t1.05\t1.2\t6000\t8\t11"]
    path = write(tmp_path / "EURUSD_D1.csv", lines)
    # the D1 bar of 2 January on a UTC+2 (winter) server opens at its midnight: 1 January 22:00 UTC
    bars = read_mt5_export(path, symbol="EURUSD", timeframe="D1", server_tz="Europe/Athens")
    assert bars["time"].to_list() == [utc(2024, 1, 1, 22), utc(2024, 1, 2, 22)]
    assert bars["real_volume"].to_list() == [7, 8]
    assert validate_bars(bars, server_tz="Europe/Athens").rows == 2
    # on the UTC grid those opens are not midnights: the grid is the server's, and says so
    err = expect_error("time not aligned", 1, lambda: validate_bars(bars, server_tz="UTC"))
    assert "D1 grid anchored at UTC midnight: is the timeframe or server_tz wrong?" in str(err)
    with pytest.raises(ConfigError, match="EURUSD_D1.csv: times are on the broker's server clock"):
        read_mt5_export(path, symbol="EURUSD", timeframe="D1")  # no silent UTC default for an MT5 export


def test_mt5_intraday_file_without_time_column_is_refused(tmp_path):
    path = write(tmp_path / "x.csv", [MT5_D1_HEADER, "2024.01.02\t1.1\t1.2\t1.0\t1.15\t5000\t7\t12"])
    err = expect_error("missing column <TIME>", None, lambda: read_mt5_export(path, symbol="X", timeframe="H1", server_tz="UTC"))
    assert str(err).startswith("x.csv: missing column <TIME>")


@pytest.mark.parametrize(
    ("encoding", "bom", "newline"),
    [("utf-16-le", b"\xff\xfe", "\r\n"), ("utf-16-be", b"\xfe\xff", "\r\n"), ("utf-8", b"\xef\xbb\xbf", "\r\n"),
     ("utf-8", b"", "\r\n"), ("utf-16-le", b"", "\n")],
)
def test_mt5_encodings_and_crlf(tmp_path, encoding, bom, newline):
    path = write(tmp_path / "enc.csv", [MT5_HEADER, *mt5_rows("2024.01.02", ["00:00", "01:00"])],
                 encoding=encoding, bom=bom, newline=newline)
    bars = read_bars(path, symbol="EURUSD", timeframe="H1", server_tz="UTC")  # format auto-detected from <DATE>
    assert bars["time"].to_list() == [utc(2024, 1, 2, 0), utc(2024, 1, 2, 1)]
    assert bars["spread"].to_list() == [1, 2]  # the last column is not polluted by '\r'


def test_server_tz_athens_winter_and_summer(tmp_path):
    lines = [MT5_HEADER, *mt5_rows("2024.01.02", ["10:00"]), *mt5_rows("2024.07.02", ["10:00"])]
    path = write(tmp_path / "a.csv", lines)
    bars = read_mt5_export(path, symbol="EURUSD", timeframe="H1", server_tz="Europe/Athens")
    # EET is UTC+2 in winter, EEST UTC+3 in summer
    assert bars["time"].to_list() == [utc(2024, 1, 2, 8), utc(2024, 7, 2, 7)]


def test_server_tz_fixed_offset_etc_gmt_minus_2(tmp_path):
    lines = [MT5_HEADER, *mt5_rows("2024.01.02", ["10:00"]), *mt5_rows("2024.07.02", ["10:00"])]
    path = write(tmp_path / "a.csv", lines)
    bars = read_mt5_export(path, symbol="EURUSD", timeframe="H1", server_tz="Etc/GMT-2")
    assert bars["time"].to_list() == [utc(2024, 1, 2, 8), utc(2024, 7, 2, 8)]  # POSIX sign: GMT-2 is UTC+2


def test_server_tz_new_york_close(tmp_path):
    # 15 March 2024: US clocks have changed (10 March), EU clocks not yet (31 March)
    days = [("2024.01.02", 8), ("2024.03.15", 7), ("2024.07.02", 7), ("2024.11.01", 7), ("2024.11.04", 8)]
    lines = [MT5_HEADER, *(r for d, _ in days for r in mt5_rows(d, ["10:00"]))]
    path = write(tmp_path / "ny.csv", lines)
    bars = read_mt5_export(path, symbol="EURUSD", timeframe="H1", server_tz=NY_CLOSE)
    assert bars["time"].to_list() == [
        utc(int(d[:4]), int(d[5:7]), int(d[8:]), hour) for d, hour in days
    ]
    athens = read_mt5_export(path, symbol="EURUSD", timeframe="H1", server_tz="Europe/Athens")
    assert athens["time"][1] == utc(2024, 3, 15, 8)  # an hour off: why NY+7 exists


def test_dst_non_existent_local_time_is_an_error(tmp_path):
    # Europe/Athens jumps from 03:00 to 04:00 on 2024-03-31
    lines = [MT5_HEADER, *mt5_rows("2024.03.31", ["01:00", "02:00", "03:30", "04:00"])]
    path = write(tmp_path / "spring.csv", lines)
    err = expect_error("non-existent local time in server_tz", 3,
                       lambda: read_mt5_export(path, symbol="EURUSD", timeframe="M30", server_tz="Europe/Athens"))
    assert "Europe/Athens" in str(err) and "spring.csv: row 3" in str(err)


def test_dst_fold_resolves_by_row_order_and_keeps_both_bars(tmp_path):
    # Europe/Athens repeats 03:00..03:59 on 2024-10-27 (04:00 EEST = 01:00 UTC becomes 03:00 EET)
    lines = [MT5_HEADER, *mt5_rows("2024.10.27", ["02:30", "03:00", "03:30", "03:00", "03:30", "04:00"])]
    path = write(tmp_path / "autumn.csv", lines)
    want = [utc(2024, 10, 26, 23, 30), utc(2024, 10, 27, 0, 0), utc(2024, 10, 27, 0, 30),
            utc(2024, 10, 27, 1, 0), utc(2024, 10, 27, 1, 30), utc(2024, 10, 27, 2, 0)]
    bars = read_mt5_export(path, symbol="BTCUSD", timeframe="M30", server_tz="Europe/Athens")
    assert bars["time"].to_list() == want  # first 03:00 before the change, second after it
    # the same when the fold straddles a batch boundary
    streamed = pl.concat(iter_bars(path, symbol="BTCUSD", timeframe="M30", server_tz="Europe/Athens", batch_rows=3))
    assert streamed["time"].to_list() == want
    report = validate_bars(bars, server_tz="Europe/Athens", calendar="24x7")  # both bars kept, no gap
    assert (report.rows, report.gaps.height) == (6, 0)
    # a wall time seen a third time is a duplicate of the second instant
    path3 = write(tmp_path / "thrice.csv", [MT5_HEADER, *mt5_rows("2024.10.27", ["03:00", "03:00", "03:00"])])
    bars3 = read_mt5_export(path3, symbol="BTCUSD", timeframe="M30", server_tz="Europe/Athens")
    expect_error("duplicate time", 3, lambda: validate_bars(bars3, server_tz="Europe/Athens", calendar="24x7"))
    # the same wall times are distinct instants in a zone without DST
    bars = read_mt5_export(path, symbol="BTCUSD", timeframe="M30", server_tz="Etc/GMT-2")
    assert bars["time"][2] == utc(2024, 10, 27, 1, 30)


def test_unknown_server_tz_and_timeframe_and_missing_symbol(tmp_path):
    path = write(tmp_path / "a.csv", [MT5_HEADER, *mt5_rows("2024.01.02", ["10:00"])])
    with pytest.raises(ConfigError, match="unknown server_tz 'Europe/Atlantis'"):
        read_mt5_export(path, symbol="X", timeframe="H1", server_tz="Europe/Atlantis")
    with pytest.raises(ConfigError, match="unknown timeframe 'H2'"):
        read_mt5_export(path, symbol="X", timeframe="H2", server_tz="UTC")
    with pytest.raises(ConfigError, match="pass symbol="):
        read_bars(path, timeframe="H1", server_tz="UTC")
    with pytest.raises(ConfigError, match="unknown format"):
        read_bars(path, symbol="X", timeframe="H1", server_tz="UTC", format="xlsx")


# --- generic tables --------------------------------------------------------------------------------

def test_generic_csv_with_mapping(tmp_path):
    lines = ["Stamp,Px,O,Hi,Lo,TV,Sym", "2024-01-02 10:00:00,1.2,1.1,1.3,1.0,100,EURUSD",
             "2024-01-02 11:00:00,1.25,1.2,1.3,1.1,150,EURUSD"]
    path = write(tmp_path / "g.csv", lines)
    mapping = {"time": "Stamp", "close": "Px", "open": "O", "high": "Hi", "low": "Lo", "tick_volume": "TV",
               "symbol": "Sym"}
    bars = read_table(path, timeframe="H1", server_tz="Europe/Athens", mapping=mapping)
    assert bars.schema == CANONICAL
    assert bars["time"].to_list() == [utc(2024, 1, 2, 8), utc(2024, 1, 2, 9)]
    assert bars["close"].to_list() == [1.2, 1.25]
    assert bars["symbol"].to_list() == ["EURUSD", "EURUSD"]
    assert bars["spread"].null_count() == 2 and bars["real_volume"].to_list() == [0, 0]


def test_generic_csv_aliases_case_insensitive_and_symbol_argument(tmp_path):
    lines = ["DATE,OPEN,High,low,Close,Volume,Vol", "2024-01-02,1.1,1.3,1.0,1.2,100,5", "2024-01-03,1.2,1.3,1.1,1.25,90,6"]
    path = write(tmp_path / "d.csv", lines)
    bars = read_table(path, symbol="GOOG", timeframe="D1")
    assert bars["time"].to_list() == [utc(2024, 1, 2), utc(2024, 1, 3)]
    assert bars["tick_volume"].to_list() == [100, 90] and bars["real_volume"].to_list() == [5, 6]
    with pytest.raises(BarValidationError, match="missing column symbol: .*pass symbol="):
        read_table(path, timeframe="D1")


def test_generic_csv_separate_date_and_time_and_symbol_mismatch(tmp_path):
    lines = ["Symbol,Date,Time,Open,High,Low,Close,Volume", "EURUSD,2024-01-02,10:00,1.1,1.3,1.0,1.2,100",
             "GBPUSD,2024-01-02,11:00,1.1,1.3,1.0,1.2,100"]
    path = write(tmp_path / "s.csv", lines)
    bars = read_table(path, timeframe="H1")
    assert bars["time"].to_list() == [utc(2024, 1, 2, 10), utc(2024, 1, 2, 11)]
    assert bars["symbol"].to_list() == ["EURUSD", "GBPUSD"]
    expect_error("symbol mismatch", 2, lambda: read_table(path, symbol="EURUSD", timeframe="H1"))


def test_generic_csv_tz_aware_strings_and_mixing(tmp_path):
    aware = write(tmp_path / "aware.csv", ["time,open,high,low,close,tick_volume",
                                           "2024-01-02T10:00:00Z,1,1,1,1,1", "2024-01-02T13:00:00+02:00,1,1,1,1,1"])
    bars = read_table(aware, symbol="X", timeframe="H1", server_tz="Asia/Tokyo")  # zone unused: times are aware
    assert bars["time"].to_list() == [utc(2024, 1, 2, 10), utc(2024, 1, 2, 11)]
    mixed = write(tmp_path / "mixed.csv", ["time,open,high,low,close,tick_volume",
                                           "2024-01-02T10:00:00Z,1,1,1,1,1", "2024-01-02 11:00:00,1,1,1,1,1"])
    expect_error("mixed naive and tz-aware times", 2, lambda: read_table(mixed, symbol="X", timeframe="H1"))
    reverse = write(tmp_path / "reverse.csv", ["time,open,high,low,close,tick_volume",
                                               "2024-01-02 10:00:00,1,1,1,1,1", "2024-01-02 11:00:00,1,1,1,1,1",
                                               "2024-01-02T12:00:00+00:00,1,1,1,1,1"])
    expect_error("mixed naive and tz-aware times", 3, lambda: read_table(reverse, symbol="X", timeframe="H1"))
    garbage = write(tmp_path / "garbage.csv", ["time,open,high,low,close,tick_volume",
                                               "2024-01-02 10:00:00,1,1,1,1,1", "yesterday,1,1,1,1,1"])
    expect_error("invalid time", 2, lambda: read_table(garbage, symbol="X", timeframe="H1"))


def test_timeframe_column_must_match_the_stated_timeframe(tmp_path):
    path = write(tmp_path / "tf.csv", ["symbol,timeframe,time,open,high,low,close,tick_volume",
                                       "A,H1,2024-01-02 10:00,1,1,1,1,1", "A,m1,2024-01-02 11:00,1,1,1,1,1"])
    expect_error("timeframe mismatch", 2, lambda: read_table(path, timeframe="H1"))


def test_parquet_tz_aware_and_naive(tmp_path):
    times = [datetime(2024, 7, 2, 10), datetime(2024, 7, 2, 11)]  # noqa: DTZ001 - naive broker clock on purpose
    table = {"symbol": ["EURUSD"] * 2, "open": [1.0, 1.1], "high": [1.2, 1.2], "low": [0.9, 1.0],
             "close": [1.1, 1.15], "tick_volume": [10, 11], "spread": [3, 4]}
    pq.write_table(pa.table({**table, "time": pa.array(times, pa.timestamp("ms"))}), tmp_path / "naive.parquet")
    bars = read_bars(tmp_path / "naive.parquet", timeframe="H1", server_tz="Europe/Athens")
    assert bars.schema == CANONICAL
    assert bars["time"].to_list() == [utc(2024, 7, 2, 7), utc(2024, 7, 2, 8)]
    assert bars["spread"].to_list() == [3, 4]
    aware = pa.array([utc(2024, 7, 2, 7), utc(2024, 7, 2, 8)], pa.timestamp("us", "Europe/Athens"))
    pq.write_table(pa.table({**table, "time": aware}), tmp_path / "aware.parquet")
    bars = read_table(tmp_path / "aware.parquet", timeframe="H1", server_tz="America/New_York")
    assert bars["time"].to_list() == [utc(2024, 7, 2, 7), utc(2024, 7, 2, 8)]
    assert bars["source_row"].to_list() == [1, 2]


def test_parquet_epoch_seconds_and_non_numeric_column(tmp_path):
    epoch = [int(datetime(2024, 1, 2, 10, tzinfo=UTC).timestamp())]  # MT5 copy_rates: server clock as epoch
    base = {"symbol": ["X"], "time": epoch, "open": [1.0], "high": [1.0], "low": [1.0], "close": [1.0]}
    pq.write_table(pa.table({**base, "tick_volume": [5]}), tmp_path / "e.parquet")
    bars = read_bars(tmp_path / "e.parquet", timeframe="H1", server_tz="Etc/GMT-2")
    assert bars["time"].to_list() == [utc(2024, 1, 2, 8)]
    pq.write_table(pa.table({**base, "tick_volume": [True]}), tmp_path / "b.parquet")
    expect_error("non-numeric tick_volume", 1, lambda: read_bars(tmp_path / "b.parquet", timeframe="H1", server_tz="UTC"))


def test_the_real_sample_csv_reads_like_the_sample_loader():
    path = sample_path("GOOG")  # pandas to_csv output: unnamed index column holds the dates
    bars = read_table(path, symbol="GOOG", timeframe="D1", mapping={"real_volume": "Volume", "tick_volume": "Volume"})
    sample = load_sample("GOOG")
    assert bars.height == sample.height == 2148
    assert bars["time"].to_list() == sample["time"].to_list()
    assert bars["close"].to_list() == sample["close"].to_list()
    assert bars["real_volume"].to_list() == sample["real_volume"].to_list()


# --- failures --------------------------------------------------------------------------------------

def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    err = expect_error("empty file", None, lambda: read_bars(path, symbol="X", timeframe="H1", server_tz="UTC"))
    assert str(err).startswith("empty.csv: empty file")
    path.write_bytes(b"\xff\xfe")  # a BOM and nothing else
    expect_error("empty file", None, lambda: read_bars(path, symbol="X", timeframe="H1", server_tz="UTC"))


def test_header_only(tmp_path):
    path = write(tmp_path / "h.csv", [MT5_HEADER], newline="\r\n")
    expect_error("no data rows", None, lambda: read_bars(path, symbol="X", timeframe="H1", server_tz="UTC"))
    path = write(tmp_path / "h2.csv", ["time,open,high,low,close,tick_volume", "", ""])
    expect_error("no data rows", None, lambda: read_table(path, symbol="X", timeframe="H1"))


def test_wrong_delimiter_names_the_missing_columns(tmp_path):
    lines = [MT5_HEADER.replace("\t", ";"), *[r.replace("\t", ";") for r in mt5_rows("2024.01.02", ["00:00"])]]
    path = write(tmp_path / "semi.csv", lines)
    err = expect_error("missing column <DATE>", None, lambda: read_bars(path, symbol="X", timeframe="H1", server_tz="UTC"))
    assert "<OPEN>" in err.detail and "semicolon-separated" in err.detail
    path = write(tmp_path / "semi2.csv", ["time;open;high;low;close;volume", "2024-01-02;1;1;1;1;1"])
    err = expect_error("missing column time", None, lambda: read_table(path, symbol="X", timeframe="D1"))
    assert "open" in err.detail and "semicolon-separated" in err.detail


def test_missing_column(tmp_path):
    header = MT5_HEADER.replace("\t<TICKVOL>", "")
    row = "2024.01.02\t00:00\t1\t1\t1\t1\t0\t1"
    path = write(tmp_path / "m.csv", [header, row])
    err = expect_error("missing column <TICKVOL>", None, lambda: read_mt5_export(path, symbol="X", timeframe="H1", server_tz="UTC"))
    assert str(err).startswith("m.csv: missing column <TICKVOL>")
    path = write(tmp_path / "g.csv", ["time,open,high,low,volume", "2024-01-02,1,1,1,1"])
    expect_error("missing column close", None, lambda: read_table(path, symbol="X", timeframe="D1"))
    expect_error("missing column Px", None,
                 lambda: read_table(path, symbol="X", timeframe="D1", mapping={"close": "Px"}))


def test_truncated_last_line(tmp_path):
    rows = mt5_rows("2024.01.02", ["00:00", "01:00", "02:00"])
    path = write(tmp_path / "t.csv", [MT5_HEADER, *rows[:2], rows[2][:25]], newline="\r\n")
    err = expect_error("truncated row", 3, lambda: read_mt5_export(path, symbol="X", timeframe="H1", server_tz="UTC"))
    assert "expected 9" in err.detail
    path = write(tmp_path / "t16.csv", [MT5_HEADER, *rows[:2], rows[2][:25]], encoding="utf-16-le", bom=b"\xff\xfe")
    expect_error("truncated row", 3, lambda: read_mt5_export(path, symbol="X", timeframe="H1", server_tz="UTC"))


def test_too_many_fields(tmp_path):
    rows = mt5_rows("2024.01.02", ["00:00", "01:00"])
    path = write(tmp_path / "t.csv", [MT5_HEADER, rows[0], rows[1] + "\t99"])
    expect_error("too many fields", 2, lambda: read_mt5_export(path, symbol="X", timeframe="H1", server_tz="UTC"))


@pytest.mark.parametrize(
    ("column", "value", "rule"),
    [(2, "1,1000", "non-numeric open"), (5, "abc", "non-numeric close"), (6, "12.5", "non-numeric tick_volume"),
     (8, "n/a", "non-numeric spread")],
)
def test_non_numeric_values_name_the_row(tmp_path, column, value, rule):
    rows = mt5_rows("2024.01.02", ["00:00", "01:00", "02:00", "03:00"])
    fields = rows[2].split("\t")
    fields[column] = value
    rows[2] = "\t".join(fields)
    path = write(tmp_path / "n.csv", [MT5_HEADER, *rows])
    err = expect_error(rule, 3, lambda: read_mt5_export(path, symbol="X", timeframe="H1", server_tz="UTC"))
    assert repr(value) in err.detail


def test_invalid_time_and_invalid_encoding(tmp_path):
    rows = mt5_rows("2024.01.02", ["00:00", "25:00"])
    path = write(tmp_path / "bad_time.csv", [MT5_HEADER, *rows])
    expect_error("invalid time", 2, lambda: read_mt5_export(path, symbol="X", timeframe="H1", server_tz="UTC"))
    path = tmp_path / "latin1.csv"
    path.write_bytes("time,open,high,low,close,volume\n2024-01-02,1,1,1,1,1\n2024-01-03,1,1,1,1,1 \xe9\n".encode("latin-1"))
    expect_error("invalid encoding", None, lambda: read_table(path, symbol="X", timeframe="D1"))


def test_missing_file_is_an_mt5lab_error(tmp_path):
    expect_error("cannot open file", None, lambda: read_bars(tmp_path / "nope.csv", symbol="X", timeframe="H1", server_tz="UTC"))
    expect_error("cannot open file", None, lambda: read_bars(tmp_path / "nope.parquet", symbol="X", timeframe="H1", server_tz="UTC"))


# --- streaming -------------------------------------------------------------------------------------

def test_iter_bars_streams_batches_with_continuous_source_rows(tmp_path):
    hours = [f"{h:02d}:{m:02d}" for h in range(24) for m in range(0, 60, 5)]  # 288 M5 bars
    path = write(tmp_path / "m5.csv", [MT5_HEADER, *mt5_rows("2024.01.02", hours)])
    batches = list(iter_bars(path, symbol="EURUSD", timeframe="M5", server_tz="UTC", batch_rows=100))
    assert [b.height for b in batches] == [100, 100, 88]
    assert all(b.schema == CANONICAL for b in batches)
    rows = pl.concat(batches)["source_row"].to_list()
    assert rows == list(range(1, 289))
    assert pl.concat(batches).equals(read_bars(path, symbol="EURUSD", timeframe="M5", server_tz="UTC"))
    pq.write_table(pl.concat(batches).drop("source_row").to_arrow(), tmp_path / "m5.parquet")
    pbatches = list(iter_bars(tmp_path / "m5.parquet", timeframe="M5", server_tz="UTC", batch_rows=100))
    assert [b.height for b in pbatches] == [100, 100, 88]
    assert pl.concat(pbatches)["source_row"].to_list() == rows


def test_error_in_a_later_batch_names_the_file_row(tmp_path):
    hours = [f"{h:02d}:{m:02d}" for h in range(24) for m in range(0, 60, 5)]
    rows = mt5_rows("2024.01.02", hours)
    rows[250] = rows[250].replace("1.1005", "x")
    path = write(tmp_path / "late.csv", [MT5_HEADER, *rows])
    it = iter_bars(path, symbol="EURUSD", timeframe="M5", server_tz="UTC", batch_rows=100)
    assert next(it).height == 100 and next(it).height == 100
    expect_error("non-numeric close", 251, lambda: next(it))


def test_argument_errors_surface_before_iteration(tmp_path):
    with pytest.raises(ConfigError):
        iter_bars(tmp_path / "whatever.csv", symbol="X", timeframe="H1", server_tz="Nowhere/Land")
    with pytest.raises(ConfigError):
        iter_bars(tmp_path / "whatever.csv", symbol="X", timeframe="H1", server_tz="UTC", batch_rows=0)


def test_padded_and_blank_values(tmp_path):
    lines = ["time,open,high,low,close,volume,spread", "2024-01-02 10:00, 1.1 ,1.3,1.0,1.2, 100 ,",
             " 2024-01-02 11:00 ,1.1,1.3,1.0,1.2,100.0,3"]
    bars = read_table(write(tmp_path / "p.csv", lines), symbol="X", timeframe="H1")
    assert bars["open"].to_list() == [1.1, 1.1]
    assert bars["tick_volume"].to_list() == [100, 100]
    assert bars["spread"].to_list() == [None, 3]
    assert bars["time"].to_list() == [utc(2024, 1, 2, 10), utc(2024, 1, 2, 11)]


def test_validation_of_a_read_file_names_the_file_row(tmp_path):
    rows = mt5_rows("2024.01.08", ["00:00", "01:00", "02:00", "03:00"])
    rows[2] = rows[2].replace("\t1.1010\t", "\t1.0980\t")  # high below low on data row 3
    path = write(tmp_path / "EURUSD_H1.csv", [MT5_HEADER, *rows, ""])  # a trailing blank line too
    bars = read_mt5_export(path, symbol="EURUSD", timeframe="H1", server_tz="UTC")
    with pytest.raises(BarValidationError, match=r"^EURUSD_H1\.csv: row 3: high below low"):
        validate_bars(bars, source=path.name)
