"""The real broker inputs of ``../shared/cases/broker/`` (see its README), each with its right result.

Expected values are written out by hand from the files and the broker clocks (NY+7 is UTC+2 until
the US DST change on 10 March 2024, UTC+3 after; New York is UTC-5, then UTC-4), never computed by
the code under test. The frozen-quotes case is in ``test_domains.py``, the Easter ttl case in
``test_holidays.py``, ``mt5lab online`` in the CLI tests.
"""

from __future__ import annotations

import re
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import polars as pl
import pytest

from mt5lab.bars.calendars import expected_bar_opens
from mt5lab.bars.ingest import ingest_files
from mt5lab.bars.readers import read_bars
from mt5lab.bars.validate import validate_bars
from mt5lab.errors import BarValidationError, ConfigError, Mt5LabWarning
from mt5lab.features.build import build
from mt5lab.storage.local import LocalStore
from mt5lab.training.assemble import training_set

CASES = Path(__file__).resolve().parents[2] / "shared" / "cases" / "broker"
H1 = CASES / "EURUSD_H1_real_mt5.csv"
H4 = CASES / "EURUSD_H4_from_real_mt5.csv"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _no_desk_clock(monkeypatch):
    monkeypatch.delenv("MT5LAB_SERVER_TZ", raising=False)


def test_the_cases_are_here():
    assert len(list(CASES.glob("*.csv"))) + len(list(CASES.glob("*.parquet"))) == 9


# --- the server clock ----------------------------------------------------------------------------

@pytest.mark.parametrize("path", [H1, CASES / "EURUSD_H1_real_mt5_utf16.csv"])
def test_real_mt5_h1_on_ny_plus_7(path):
    bars = read_bars(path, symbol="EURUSD", timeframe="H1", server_tz="NY+7")
    assert bars.height == 264
    assert bars["time"][0] == utc(2024, 2, 29, 22)  # server 2024.03.01 00:00, UTC+2
    # Friday 8 March 23:00 server (UTC+2) and Monday 11 March 00:00 server (UTC+3, after US DST)
    i = bars["time"].to_list().index(utc(2024, 3, 8, 21))
    assert bars["time"][i + 1] == utc(2024, 3, 10, 21)
    assert bars["time"][-1] == utc(2024, 3, 15, 20)  # Friday 15 March 23:00 server
    report = validate_bars(bars, server_tz="NY+7", calendar="fx")
    assert report.gaps.height == 0


def test_real_mt5_h1_read_as_utc_is_refused_naming_the_clock():
    bars = read_bars(H1, symbol="EURUSD", timeframe="H1", server_tz="UTC")
    with pytest.raises(BarValidationError) as info:
        validate_bars(bars, source=H1.name, server_tz="UTC")
    err = info.value
    # row 23 is Friday 1 March 22:00 server, read as 22:00 UTC: after the FX close (22:00 UTC in winter)
    assert (err.rule, err.row) == ("bar while market closed", 23)
    assert "is the server clock NY+7" in str(err) and "\n" not in str(err)


def test_fixed_plus_2_is_an_hour_off_after_the_us_change_and_says_so():
    bars = read_bars(H1, symbol="EURUSD", timeframe="H1", server_tz="Etc/GMT-2")
    with pytest.raises(BarValidationError, match="is the server clock NY\\+7") as info:
        validate_bars(bars, server_tz="Etc/GMT-2")
    assert info.value.row == 264  # Friday 15 March 23:00 server = 21:00 UTC under UTC+2: FX closed


def test_h4_grid_is_anchored_at_the_server_midnight():
    bars = read_bars(H4, symbol="EURUSD", timeframe="H4", server_tz="NY+7")
    assert bars.height == 66
    assert bars["time"][0] == utc(2024, 2, 29, 22)
    assert bars["time"][1] == utc(2024, 3, 1, 2)
    after = bars.filter(pl.col("time") >= utc(2024, 3, 10))["time"]
    assert after[0] == utc(2024, 3, 10, 21)  # Monday 11 March 00:00 server, UTC+3
    report = validate_bars(bars, server_tz="NY+7", calendar="fx")
    assert report.gaps.height == 0  # no false gaps across the weekend or the DST change
    want = expected_bar_opens(utc(2024, 2, 29, 22), utc(2024, 3, 15, 17), "H4", "fx", "NY+7")
    assert want.to_list() == bars["time"].to_list()
    # on the UTC grid, the same bars are refused with a message that names the grid
    with pytest.raises(BarValidationError, match="time not aligned.*H4 grid anchored at UTC midnight"):
        validate_bars(bars, server_tz="UTC")


def _h4_on(server_tz: str) -> pl.DataFrame:
    """The EURUSD H1 sample (UTC, Apr 2017 - Feb 2018) summed into H4 bars of ``server_tz``'s grid."""
    from mt5lab.bars.clock import from_server, to_server
    from mt5lab.bars.samples import load_sample

    h1 = load_sample("EURUSD")
    bucket = to_server(h1["time"], server_tz).dt.truncate("4h")
    return (h1.with_columns(_b=bucket).group_by("_b", maintain_order=True)
            .agg(pl.col("open").first(), pl.col("high").max(), pl.col("low").min(), pl.col("close").last(),
                 pl.col("tick_volume").sum(), pl.col("spread").first(), pl.col("real_volume").sum())
            .select(pl.lit("EURUSD").alias("symbol"), pl.lit("H4").alias("timeframe"),
                    from_server(pl.col("_b"), server_tz).alias("time"), "open", "high", "low", "close",
                    "tick_volume", "spread", "real_volume"))


@pytest.mark.parametrize("server_tz", ["UTC", "America/New_York", "Europe/London", "Asia/Tokyo", "NY+7"])
def test_correct_h4_bars_straddling_the_weekly_open_are_silent(server_tz):
    """A UTC server's first H4 bar of the week opens Sunday 20:00 UTC and holds the 22:00 open: normal."""
    bars = _h4_on(server_tz)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Mt5LabWarning)
        assert validate_bars(bars, server_tz=server_tz, calendar="fx").rows == bars.height


def test_h4_read_two_hours_off_is_not_visible_to_the_calendar():
    # every bar of the NY+7 H4 export read as UTC still touches market hours: no calendar can tell
    # (the README says so); the user's server_tz is the only safeguard, and it has no default
    bars = read_bars(H4, symbol="EURUSD", timeframe="H4", server_tz="UTC")
    assert validate_bars(bars, server_tz="UTC").rows == 66


def test_a_year_of_new_york_server_bars_read_as_utc_names_new_york():
    from mt5lab.bars.clock import to_server
    from mt5lab.bars.samples import load_sample

    bars = load_sample("EURUSD")  # Apr 2017 - Feb 2018: both DST regimes
    wall = to_server(bars["time"], "America/New_York").dt.replace_time_zone("UTC")
    with pytest.raises(BarValidationError, match=r"is the server clock America/New_York \(with its DST\)\? "
                                                 r"read with --server-tz America/New_York"):
        validate_bars(bars.with_columns(time=wall), server_tz="UTC")


def test_d1_sunday_bar_wholly_in_the_weekend_is_refused():
    # the New York server's D1 file read as NY+7: its Sunday bar lands Saturday 22:00 .. Sunday 22:00 UTC
    path = CASES / "EURUSD_D1_newyork_server.csv"
    bars = read_bars(path, symbol="EURUSD", timeframe="D1", server_tz="NY+7")
    # one Sunday bar says little about the offset: the message gives the range of clocks that fit
    with pytest.raises(BarValidationError, match=r"row 3: bar while market closed.*\(any of UTC-12..UTC\+1 fits\)"):
        validate_bars(bars, source=path.name, server_tz="NY+7")


def test_d1_of_a_new_york_server_opens_at_new_york_midnight():
    path = CASES / "EURUSD_D1_newyork_server.csv"
    bars = read_bars(path, symbol="EURUSD", timeframe="D1", server_tz="America/New_York")
    times = bars["time"].to_list()
    assert times[0] == utc(2024, 2, 29, 5)  # the bar dated 29 Feb: 00:00 New York (EST)
    assert utc(2024, 3, 11, 4) in times  # after the US DST change: 00:00 EDT
    assert validate_bars(bars, server_tz="America/New_York", calendar="fx").gaps.height == 0


def test_d1_server_tz_is_never_ignored():
    path = CASES / "EURUSD_D1_newyork_server.csv"
    ny = read_bars(path, symbol="EURUSD", timeframe="D1", server_tz="America/New_York")
    ny7 = read_bars(path, symbol="EURUSD", timeframe="D1", server_tz="NY+7")
    assert (ny["time"][0], ny7["time"][0]) == (utc(2024, 2, 29, 5), utc(2024, 2, 28, 22))


def test_d1_west_of_utc_no_decision_sees_a_bar_before_its_close(tmp_path):
    store = LocalStore(tmp_path / "data")
    ingest_files(store, [CASES / "EURUSD_D1_newyork_server.csv"], symbol="EURUSD", timeframe="D1",
                 server_tz="America/New_York", progress=False)
    build(store, ["D1"], progress=False)
    bars = read_bars(CASES / "EURUSD_D1_newyork_server.csv", symbol="EURUSD", timeframe="D1",
                     server_tz="America/New_York")
    close_of = dict(zip(bars["time"].to_list(), bars["close"].to_list(), strict=True))
    ent = pd.DataFrame({"symbol": "EURUSD", "event_timestamp": pd.to_datetime(
        ["2024-03-06 01:00:00", "2024-03-06 05:00:00", "2024-03-06 04:59:59"], utc=True)})
    got = training_set(ent, ["ohlcv_features:close"], timeframe="D1", store=store, progress=False)
    # 01:00 UTC on 6 March: the bar of 5 March closes at 00:00 New York = 05:00 UTC, 4 h later;
    # the latest closed bar is 4 March (opened 05:00 UTC on 4 March, closed 05:00 UTC on 5 March)
    assert got["close"].tolist() == [close_of[utc(2024, 3, 4, 5)], close_of[utc(2024, 3, 5, 5)],
                                     close_of[utc(2024, 3, 4, 5)]]


# --- copy_rates frames and epoch integers --------------------------------------------------------

def test_copy_rates_int_seconds_convert_like_the_cli(tmp_path, monkeypatch):
    from mt5lab.online.update import update

    frame = pl.read_parquet(CASES / "EURUSD_H1_rates_int_s.parquet").with_columns(symbol=pl.lit("EURUSD"))
    store = LocalStore(tmp_path / "data")
    with pytest.raises(ConfigError, match="server clock: pass server_tz="):
        update(frame, timeframe="H1", store=store, online=False, now=utc(2024, 6, 1))
    with pytest.warns(Mt5LabWarning, match="epoch seconds"):
        res = update(frame, timeframe="H1", store=store, online=False, now=utc(2024, 6, 1), server_tz="NY+7")
    assert res.bars.inserted == 48
    stored = store.read_bars("H1", ["EURUSD"])
    # the README says "first bar 2024-03-14 21:00 UTC" for "the 15 March rows", but the file holds the
    # first 48 rows (server 2024.03.01 00:00 onwards): the right first bar is 2024-02-29 22:00 UTC
    assert stored["time"][0] == utc(2024, 2, 29, 22)
    csv = read_bars(H1, symbol="EURUSD", timeframe="H1", server_tz="NY+7").head(48)
    assert stored["time"].to_list() == csv["time"].to_list()
    assert stored["close"].to_list() == csv["close"].to_list()


def test_epoch_milliseconds_are_detected_and_said():
    path = CASES / "EURUSD_H1_epoch_ms.parquet"
    with pytest.raises(ConfigError, match="EURUSD_H1_epoch_ms.parquet: times are on the broker's server clock"):
        read_bars(path, symbol="EURUSD", timeframe="H1")  # epoch integers are copy_rates' server clock
    with pytest.warns(Mt5LabWarning, match="EURUSD_H1_epoch_ms.parquet: integer times read as epoch milliseconds"):
        bars = read_bars(path, symbol="EURUSD", timeframe="H1", server_tz="UTC")
    assert bars["time"][0] == utc(2024, 2, 29, 22)  # true UTC in the file
    csv = read_bars(H1, symbol="EURUSD", timeframe="H1", server_tz="NY+7").head(48)
    assert bars["time"].to_list() == csv["time"].to_list()


@pytest.mark.parametrize(("scale", "unit"), [(1, "seconds"), (10**3, "milliseconds"), (10**6, "microseconds"),
                                              (10**9, "nanoseconds")])
def test_every_epoch_unit(tmp_path, scale, unit):
    t0 = 1_709_251_200  # 2024-03-01 00:00:00
    path = tmp_path / "e.parquet"
    pl.DataFrame({"time": [t0 * scale, (t0 + 3600) * scale], "open": 1.0, "high": 1.1, "low": 0.9, "close": 1.0,
                  "tick_volume": 1}).write_parquet(path)
    with pytest.warns(Mt5LabWarning, match=f"epoch {unit}"):
        bars = read_bars(path, symbol="X", timeframe="H1", server_tz="UTC")
    assert bars["time"].to_list() == [utc(2024, 3, 1), utc(2024, 3, 1, 1)]


def test_epoch_out_of_range_names_file_row_and_unit(tmp_path):
    path = tmp_path / "bad.parquet"
    pl.DataFrame({"time": [1_709_251_200, 99_999_999_999], "open": 1.0, "high": 1.1, "low": 0.9, "close": 1.0,
                  "tick_volume": 1}).write_parquet(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Mt5LabWarning)
        with pytest.raises(BarValidationError) as info:
            read_bars(path, symbol="X", timeframe="H1", server_tz="UTC")
    err = info.value
    assert (err.source, err.row, err.rule) == ("bad.parquet", 2, "time out of range")
    assert "epoch s" in err.detail


# --- MT4 ----------------------------------------------------------------------------------------

def test_mt4_history_center_export_without_header():
    path = CASES / "EURUSD60_mt4_noheader.csv"
    bars = read_bars(path, symbol="EURUSD", timeframe="H1", server_tz="UTC")
    assert bars.height == 52
    first = bars.row(0, named=True)
    assert (first["time"], first["open"], first["high"], first["low"], first["close"], first["tick_volume"]) == (
        utc(2019, 2, 15, 14), 1.12525, 1.12851, 1.12514, 1.12686, 9915)
    assert bars["time"][8] == utc(2019, 2, 18, 0)
    with pytest.raises(ConfigError, match="EURUSD60_mt4_noheader.csv: times are on the broker's server clock"):
        read_bars(path, symbol="EURUSD", timeframe="H1")
    with pytest.raises(ConfigError, match="MT4 History Center export has no symbol column"):
        read_bars(path, timeframe="H1", server_tz="UTC")


def test_the_desk_clock_from_the_environment(monkeypatch):
    monkeypatch.setenv("MT5LAB_SERVER_TZ", "NY+7")
    bars = read_bars(H4, symbol="EURUSD", timeframe="H4")
    assert bars["time"][0] == utc(2024, 2, 29, 22)
    assert validate_bars(bars).gaps.height == 0  # the grid follows the same clock


def test_dst_gap_hour_is_refused_with_one_line(tmp_path):
    path = tmp_path / "spring.csv"
    path.write_text("<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>\n"
                    "2024.03.10\t01:00:00\t1\t1.1\t0.9\t1\t5\t0\t1\n2024.03.10\t02:00:00\t1\t1.1\t0.9\t1\t5\t0\t1\n")
    with pytest.raises(BarValidationError) as info:
        read_bars(path, symbol="BTCUSD", timeframe="H1", server_tz="America/New_York")
    assert (info.value.row, info.value.rule) == (2, "non-existent local time in server_tz")
    assert "\n" not in str(info.value)


def test_every_instant_is_one_step_apart_across_the_ny_plus_7_change():
    bars = read_bars(H1, symbol="EURUSD", timeframe="H1", server_tz="NY+7")
    steps = bars["time"].diff().drop_nulls()
    # within a trading week every step is one hour (the change falls on a closed Sunday); the winter
    # weekend is 49 h (Friday 21:00 to Sunday 22:00 UTC), the weekend of the change 48 h
    assert set(steps.to_list()) == {timedelta(hours=1), timedelta(hours=49), timedelta(hours=48)}


# --- through the CLI: exit codes, one line, nothing written ----------------------------------------

def _cli(args: list[str], data: Path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("MT5LAB_")}
    env |= {"MT5LAB_DATA_DIR": str(data), "TQDM_DISABLE": "1"}
    return subprocess.run([sys.executable, "-m", "mt5lab.cli", *args], capture_output=True, text=True, env=env,
                          cwd=Path(__file__).resolve().parents[1], timeout=300)


def test_cli_refuses_a_wrong_clock_and_writes_nothing(tmp_path):
    data = tmp_path / "data"
    out = _cli(["ingest", str(H1), "--symbol", "EURUSD", "--timeframe", "H1", "--server-tz", "UTC"], data)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert lines == [lines[0]] and lines[0].startswith(f"error: {H1}: row 23: bar while market closed")
    assert "--server-tz NY+7" in lines[0]
    assert not list(data.rglob("*.parquet"))
    out = _cli(["ingest", str(H1), "--symbol", "EURUSD", "--timeframe", "H1"], data)
    assert out.returncode == 3 and "pass server_tz= (CLI: --server-tz)" in out.stderr
    out = _cli(["ingest", str(H1), "--symbol", "EURUSD", "--timeframe", "H1", "--server-tz", "NY+7"], data)
    assert out.returncode == 0, out.stderr
    assert f"{H1}: 264 rows, 0 gaps" in out.stdout


def test_cli_says_the_epoch_unit_in_one_warning_line(tmp_path):
    path = CASES / "EURUSD_H1_epoch_ms.parquet"
    out = _cli(["ingest", str(path), "--symbol", "EURUSD", "--timeframe", "H1", "--server-tz", "UTC"], tmp_path / "data")
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip().splitlines() == [
        "warning: EURUSD_H1_epoch_ms.parquet: integer times read as epoch milliseconds (detected from their "
        "magnitude) on the server clock UTC"]
    assert "48 rows, 0 gaps" in out.stdout


def test_equity_bars_at_night_warn_loudly(tmp_path):
    """US equity M30 bars 09:30-16:00 New York, exported by a UTC+9 server and read as UTC: they land
    at 18:30-01:00 New York. Not refusable (CFD sessions vary), so a warning naming the rule."""
    rows, day = [], datetime(2024, 1, 8, tzinfo=UTC)
    for d in range(5):
        for k in range(13):  # 14:30 .. 20:30 UTC opens = 09:30 .. 15:30 EST
            t = day + timedelta(days=d, hours=14, minutes=30 + 30 * k) + timedelta(hours=9)  # server wall
            rows.append(f"{t:%Y.%m.%d}\t{t:%H:%M:%S}\t10\t10.2\t9.9\t10.1\t{100 + k}\t0\t1")
    path = tmp_path / "AAPL_M30.csv"
    path.write_text("<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>\n" + "\n".join(rows) + "\n")
    bars = read_bars(path, symbol="AAPL", timeframe="M30", server_tz="UTC")
    # Friday's last bars land on Saturday in New York: a sure closure, refused; the clock named is the
    # middle of those that put every bar inside Monday..Friday 04:00-20:00 New York (UTC+5 .. UTC+14)
    with pytest.raises(BarValidationError, match=r"row 64: bar while market closed.*is the server clock UTC\+9 "
                                                 r"\(Etc/GMT-9\) \(any of UTC\+5..UTC\+14 fits\)"):
        validate_bars(bars, source=path.name, calendar="equity", server_tz="UTC")
    # without the Friday evening bars nothing is surely closed: the session rule only warns
    monday_to_thursday = bars.filter(pl.col("time").dt.weekday() <= 4)
    # (the bars opening 01:00-05:30 UTC: ten a day on three days; the first is row 4, 01:00 UTC)
    with pytest.warns(Mt5LabWarning, match=r"AAPL_M30.csv: row 4: 30 equity bars with trading activity outside "
                                           r"04:00-20:00 America/New_York \(first at 20:00 local") as caught:
        validate_bars(monday_to_thursday, source=path.name, calendar="equity", server_tz="UTC")
    named = int(re.search(r"is the server clock UTC\+(\d+)", str(caught[0].message)).group(1))
    assert 5 <= named <= 14  # a clock that explains the bars (the true one is UTC+9)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Mt5LabWarning)  # read with the right clock: silent
        validate_bars(read_bars(path, symbol="AAPL", timeframe="M30", server_tz="Etc/GMT-9"), calendar="equity",
                      server_tz="Etc/GMT-9")


@pytest.mark.parametrize(("scale", "unit"), [(1, "seconds"), (10**3, "milliseconds")])
def test_epoch_integers_in_a_csv(tmp_path, scale, unit):
    t0 = 1_709_251_200  # 2024-03-01 00:00:00 on the server clock
    path = tmp_path / "ep.csv"
    path.write_text(f"timestamp,open,high,low,close,tick_volume\n{t0 * scale},1,1.1,0.9,1,5\n"
                    f" {(t0 + 3600) * scale} ,1,1.1,0.9,1,5\n")
    with pytest.raises(ConfigError, match="ep.csv: times are on the broker's server clock"):
        read_bars(path, symbol="EURUSD", timeframe="H1")
    with pytest.warns(Mt5LabWarning, match=f"epoch {unit} .* on the server clock NY\\+7"):
        bars = read_bars(path, symbol="EURUSD", timeframe="H1", server_tz="NY+7")
    assert bars["time"].to_list() == [utc(2024, 2, 29, 22), utc(2024, 2, 29, 23)]
    path.write_text(f"timestamp,open,high,low,close,tick_volume\n{t0},1,1.1,0.9,1,5\n99999999999999999999,1,1.1,0.9,1,5\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Mt5LabWarning)
        with pytest.raises(BarValidationError) as info:
            read_bars(path, symbol="EURUSD", timeframe="H1", server_tz="UTC")
    assert (info.value.row, info.value.rule) == (2, "time out of range")


def test_the_desk_clock_does_not_move_explicit_utc_times(tmp_path, monkeypatch):
    """MT5LAB_SERVER_TZ describes naive server-clock times; a vendor file in explicit UTC keeps the UTC
    grid (D1 at UTC midnight), in files and frames alike; an explicit server_tz still sets the grid."""
    from mt5lab.bars.ingest import ingest_frame

    monkeypatch.setenv("MT5LAB_SERVER_TZ", "NY+7")
    path = tmp_path / "spx.csv"
    path.write_text("time,open,high,low,close,tick_volume\n2024-01-02T00:00:00Z,1,1.1,0.9,1,5\n"
                    "2024-01-03T00:00:00Z,1,1.1,0.9,1,5\n")
    res = ingest_files(LocalStore(tmp_path / "a"), [path], symbol="SPX", timeframe="D1", calendar="equity",
                       progress=False)
    assert (res.rows, res.reports[0].server_tz) == (2, "UTC")
    frame = read_bars(path, symbol="SPX", timeframe="D1").drop("source_row")
    assert ingest_frame(LocalStore(tmp_path / "b"), frame, calendar="equity").rows == 2
    with pytest.raises(BarValidationError, match="time not aligned"):
        ingest_frame(LocalStore(tmp_path / "c"), frame, calendar="equity", server_tz="NY+7")


def test_freshness_follows_the_server_grid(tmp_path, monkeypatch):
    """NY+7 H4 bars (21:00 UTC opens in summer) checked at 00:30 UTC: the last bar closed 21:00 UTC
    and the next closes 01:00 UTC, so the series is fresh on its own grid; on the UTC grid the 20:00
    bar would have closed at 00:00, a false 'stale'."""
    from mt5lab import freshness
    from mt5lab.feast_repo import store as store_mod
    from mt5lab.feast_repo.store import apply
    from mt5lab.online import reader as online_reader
    from mt5lab.online.update import update

    monkeypatch.setenv("MT5LAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("MT5LAB_PROFILE", raising=False)
    store_mod._STORES.clear()
    try:
        apply(None, "H4")
        bars = read_bars(H4, symbol="EURUSD", timeframe="H4", server_tz="NY+7").drop("source_row")
        bars = bars.filter(pl.col("time") <= utc(2024, 3, 13, 17))  # the last closes 21:00 UTC
        update(bars, server_tz="NY+7", now=utc(2024, 3, 14))
        now = utc(2024, 3, 14, 0, 30)
        ours = freshness(["EURUSD"], timeframes="H4", now=now, server_tz="NY+7")
        assert set(ours["status"]) == {"fresh"}
        assert set(ours["expected_close"]) == {pd.Timestamp(utc(2024, 3, 13, 21))}
        utc_grid = freshness(["EURUSD"], timeframes="H4", now=now, server_tz="UTC")
        assert set(utc_grid["status"]) == {"stale"}
        monkeypatch.setenv("MT5LAB_SERVER_TZ", "NY+7")  # the desk's clock is the default
        assert set(freshness(["EURUSD"], timeframes="H4", now=now)["status"]) == {"fresh"}
    finally:
        store_mod._STORES.clear()
        online_reader.clear_cache()


def test_a_dst_fold_split_across_update_calls_keeps_both_bars(tmp_path):
    """Europe/Athens repeats 03:00 on 2024-10-27 (03:00 EEST = 00:00 UTC, 03:00 EET = 01:00 UTC). The
    hot path sends the second 03:00 on its own; it must not overwrite the first."""
    from mt5lab.online.update import update

    def hours(*hh: int, base: float = 60000.0) -> pl.DataFrame:
        n = len(hh)
        return pl.DataFrame({"symbol": "BTCUSD", "time": [utc(2024, 10, 27, h).replace(tzinfo=None) for h in hh],
                             "open": [base + i for i in range(n)], "high": [base + 50 + i for i in range(n)],
                             "low": [base - 50 + i for i in range(n)], "close": [base + 10 + i for i in range(n)],
                             "tick_volume": [100 + i for i in range(n)]})

    store = LocalStore(tmp_path / "data")
    kw = dict(timeframe="H1", store=store, online=False, now=utc(2024, 11, 1), server_tz="Europe/Athens",
              calendar="24x7")
    first = update(hours(1, 2, 3), **kw)  # 01:00, 02:00 EEST and the first 03:00
    assert first.bars.inserted == 3
    second = update(hours(3, 4, base=70000.0), **kw)  # the second 03:00 (EET), then 04:00
    assert (second.bars.inserted, second.bars.updated) == (2, 0)
    got = store.read_bars("H1", ["BTCUSD"])
    assert got["time"].to_list() == [utc(2024, 10, 26, 22), utc(2024, 10, 26, 23), utc(2024, 10, 27, 0),
                                      utc(2024, 10, 27, 1), utc(2024, 10, 27, 2)]
    assert got["open"].to_list() == [60000.0, 60001.0, 60002.0, 70000.0, 70001.0]
    # re-sending either call changes nothing
    assert update(hours(1, 2, 3), **kw).bars.unchanged == 3
    assert update(hours(3, 4, base=70000.0), **kw).bars.unchanged == 2


def test_an_h1_file_read_as_m30_warns_about_the_timeframe():
    bars = read_bars(H1, symbol="EURUSD", timeframe="M30", server_tz="NY+7")
    with pytest.warns(Mt5LabWarning, match="EURUSD bars are typically H1 apart, read as M30: is the timeframe H1?"):
        validate_bars(bars, server_tz="NY+7")
    with pytest.raises(BarValidationError, match="H4 grid anchored at NY\\+7 midnight: is the timeframe or server_tz"):
        validate_bars(read_bars(H1, symbol="EURUSD", timeframe="H4", server_tz="NY+7"), server_tz="NY+7")


def test_clock_names_in_any_case_and_a_bad_desk_clock_names_its_variable(monkeypatch):
    assert read_bars(H4, symbol="EURUSD", timeframe="H4", server_tz="ny+7")["time"][0] == utc(2024, 2, 29, 22)
    monkeypatch.setenv("MT5LAB_SERVER_TZ", "Nowhere/Zone")
    with pytest.raises(ConfigError, match="^MT5LAB_SERVER_TZ: unknown server_tz 'Nowhere/Zone'"):
        read_bars(H4, symbol="EURUSD", timeframe="H4")


def test_reingesting_with_another_clock_does_not_mix_grids(tmp_path):
    """The New York-server D1 file stored with its clock, then again as NY+7: refused, nothing written
    (the second read would add a copy of every bar 7 h earlier instead of replacing them)."""
    path = CASES / "EURUSD_D1_newyork_server.csv"
    store = LocalStore(tmp_path / "data")
    ingest_files(store, [path], symbol="EURUSD", timeframe="D1", server_tz="America/New_York", progress=False)
    before = store.read_bars("D1")
    with pytest.raises(BarValidationError, match=r"stored bars on another grid: stored EURUSD D1 bars open at "
                                                 r"2024-02-29 05:00 UTC, not on the UTC grid"):
        ingest_files(store, [path], symbol="EURUSD", timeframe="D1", server_tz="UTC", progress=False)
    with pytest.raises(BarValidationError, match="bar while market closed"):  # its Sunday bar, as above
        ingest_files(store, [path], symbol="EURUSD", timeframe="D1", server_tz="NY+7", progress=False)
    from mt5lab.online.update import update

    utc_read = read_bars(path, symbol="EURUSD", timeframe="D1", server_tz="UTC").drop("source_row")
    with pytest.raises(BarValidationError, match="stored bars on another grid"):  # the hot path too
        update(utc_read, store=store, online=False, now=utc(2024, 6, 1), server_tz="UTC")
    assert store.read_bars("D1").equals(before)
    again = ingest_files(store, [path], symbol="EURUSD", timeframe="D1", server_tz="America/New_York",
                         progress=False)
    assert again.write.unchanged == before.height
