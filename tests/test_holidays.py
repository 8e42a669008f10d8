"""Holidays and the ttl they set: each calendar's longest normal closure, checked against the
exchange_calendars library and real data, and the UK100 Easter case end to end (issue 11).

Expected values are written by hand (known holiday dates, closure lengths, ttls) or computed here
from the library's sessions, independently of :mod:`mt5lab.bars.holidays`.
"""

from __future__ import annotations

import math
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import polars as pl
import pytest

from mt5lab.bars.holidays import (
    holiday_expr,
    holidays,
    is_holiday,
    is_trading_day,
    longest_closure,
    trading_days,
)
from mt5lab.catalog import (
    CALENDAR_CLOSURES,
    CALENDAR_EXCHANGES,
    CALENDARS,
    CLOSURE_YEARS,
    LONGEST_NORMAL_CLOSURE,
    TIMEFRAMES,
    calendar_ttl,
    ttl,
)
from mt5lab.errors import ConfigError

DAY = timedelta(days=1)
UK100 = "/work/shared/cases/broker/UK100_D1_easter2024.csv"


# --- the closures the catalog states -----------------------------------------------------------------

def test_catalog_closures_by_hand():
    assert CALENDARS == ("fx", "equity", "uk_index", "eu_index", "24x7")
    assert CALENDAR_EXCHANGES == {"equity": "XNYS", "uk_index": "XLON", "eu_index": "XETR"}
    assert {c: d.days for c, d in CALENDAR_CLOSURES.items()} == {
        "fx": 3, "equity": 3, "uk_index": 4, "eu_index": 5, "24x7": 0}
    assert LONGEST_NORMAL_CLOSURE == timedelta(days=5)


@pytest.mark.parametrize("calendar", CALENDARS)
def test_catalog_closures_are_what_the_library_says(calendar):
    assert longest_closure(calendar, *CLOSURE_YEARS) == CALENDAR_CLOSURES[calendar]


@pytest.mark.parametrize("calendar", ["equity", "uk_index", "eu_index"])
def test_catalog_closures_match_the_exchange_sessions(calendar):
    """Independent of mt5lab.bars.holidays: the library's own session list over the years, where a
    closure is the days between two consecutive sessions; closures holding an ad-hoc holiday (9/11,
    Hurricane Sandy) are not normal and are left out."""
    import exchange_calendars as xc

    first, last = CLOSURE_YEARS
    cal = xc.get_calendar(CALENDAR_EXCHANGES[calendar], start=f"{first}-01-01", end=f"{last}-12-31")
    adhoc = {t.date() for t in pd.DatetimeIndex(cal.adhoc_holidays)}
    sessions = [t.date() for t in cal.sessions]
    longest = max(b - a - DAY for a, b in zip(sessions, sessions[1:], strict=False)
                  if not any(a < d < b for d in adhoc))
    assert longest == CALENDAR_CLOSURES[calendar]


def test_fx_closure_is_a_weekend_plus_christmas_or_new_year():
    # Christmas 2023 and New Year 2024 fell on Mondays: Saturday, Sunday, Monday closed.
    assert trading_days("fx", date(2023, 12, 21), date(2024, 1, 3)) == [
        date(2023, 12, 21), date(2023, 12, 22), date(2023, 12, 26), date(2023, 12, 27),
        date(2023, 12, 28), date(2023, 12, 29), date(2024, 1, 2), date(2024, 1, 3)]
    assert longest_closure("fx", 2023, 2023) == timedelta(days=3)
    assert longest_closure("fx", 2022, 2022) == timedelta(days=2)  # 25 Dec and 1 Jan on Sundays


def test_longest_closures_are_the_known_ones():
    # London, Easter 2024: Good Friday 29 March to Easter Monday 1 April.
    assert trading_days("uk_index", date(2024, 3, 27), date(2024, 4, 3)) == [
        date(2024, 3, 27), date(2024, 3, 28), date(2024, 4, 2), date(2024, 4, 3)]
    assert longest_closure("uk_index", 2024, 2024) == timedelta(days=4)
    # Xetra, Christmas 2018: Saturday 22 to Wednesday 26 December.
    assert trading_days("eu_index", date(2018, 12, 20), date(2018, 12, 28)) == [
        date(2018, 12, 20), date(2018, 12, 21), date(2018, 12, 27), date(2018, 12, 28)]
    assert longest_closure("eu_index", 2018, 2018) == timedelta(days=5)
    # NYSE 2024: Good Friday, or Memorial Day, next to a weekend.
    assert longest_closure("equity", 2024, 2024) == timedelta(days=3)
    assert longest_closure("24x7", 2024, 2024) == timedelta(0)


# --- holidays ------------------------------------------------------------------------------------------

def test_known_holidays():
    assert holidays("uk_index", date(2024, 3, 1), date(2024, 4, 30)) == {date(2024, 3, 29), date(2024, 4, 1)}
    assert is_holiday("equity", date(2024, 7, 4)) and not is_holiday("equity", date(2024, 7, 5))
    assert holidays("eu_index", date(2018, 12, 20), date(2019, 1, 2)) == {
        date(2018, 12, 24), date(2018, 12, 25), date(2018, 12, 26), date(2018, 12, 31), date(2019, 1, 1)}
    # NYSE: Christmas 2021 (a Saturday) is observed on Friday 24; New Year 2022 (a Saturday) is not.
    assert holidays("equity", date(2021, 12, 20), date(2022, 1, 7)) == {date(2021, 12, 24)}
    assert holidays("fx", date(2024, 1, 1), date(2025, 12, 31)) == {
        date(2024, 1, 1), date(2024, 12, 25), date(2025, 1, 1), date(2025, 12, 25)}
    assert is_trading_day("fx", date(2024, 3, 29))  # FX trades on Good Friday
    assert holidays("24x7", date(2024, 1, 1), date(2024, 12, 31)) == frozenset()
    assert is_trading_day("24x7", date(2024, 12, 25)) and is_trading_day("24x7", date(2024, 3, 30))
    assert not is_trading_day("uk_index", date(2024, 3, 30))  # a Saturday


def test_adhoc_closures_are_not_holidays():
    assert not is_holiday("equity", date(2012, 10, 29))  # Hurricane Sandy
    assert not is_holiday("equity", date(2001, 9, 11))


def test_holiday_expr_is_vectorised_is_holiday():
    days = [date(2024, 3, 28), date(2024, 3, 29), date(2024, 4, 1), date(2024, 4, 2)]
    got = pl.DataFrame({"d": days}).select(holiday_expr(pl.col("d"), "uk_index", days[0], days[-1]))
    assert got.to_series().to_list() == [False, True, True, False]


def test_bad_input():
    with pytest.raises(ConfigError, match="unknown calendar 'moon'"):
        holidays("moon", date(2024, 1, 1), date(2024, 1, 2))
    with pytest.raises(TypeError, match="trading date"):
        is_holiday("equity", datetime(2024, 7, 4, tzinfo=UTC))


def test_exchange_calendars_is_imported_lazily():
    code = "import sys, mt5lab.catalog, mt5lab.bars.holidays; print('exchange_calendars' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- the rules against real data -------------------------------------------------------------------------

def test_fx_rule_matches_the_real_eurusd_sample():
    """The real EURUSD H1 bars (2017-04 to 2018-02) lack exactly the fx holidays among weekdays of the
    "New York + 7 h" server clock."""
    from mt5lab.bars.samples import load_sample

    server = (pl.col("time").dt.convert_time_zone("America/New_York").dt.replace_time_zone(None)
              + timedelta(hours=7)).dt.date()
    have = set(load_sample("EURUSD").select(server).to_series().to_list())
    lo, hi = min(have), max(have)
    missing = {lo + k * DAY for k in range((hi - lo).days)} - have
    missing = {d for d in missing if d.weekday() < 5}
    assert missing == {date(2017, 12, 25), date(2018, 1, 1)}
    assert holidays("fx", lo, hi) == missing


def test_equity_holidays_match_the_real_goog_sample():
    """GOOG D1 (2004-2013) lacks exactly the NYSE regular holidays and three ad-hoc closures."""
    from mt5lab.bars.samples import load_sample

    have = set(load_sample("GOOG")["time"].dt.date().to_list())
    lo, hi = min(have), max(have)
    missing = {d for d in (lo + k * DAY for k in range((hi - lo).days)) if d.weekday() < 5} - have
    adhoc = {date(2007, 1, 2), date(2012, 10, 29), date(2012, 10, 30)}  # President Ford; Sandy
    assert holidays("equity", lo, hi) == missing - adhoc
    assert len(missing) == 79


# --- ttl -----------------------------------------------------------------------------------------------

def test_view_ttl_is_the_longest_closure_plus_one_bar():
    assert ttl("D1") == timedelta(days=6)
    assert ttl("H1") == timedelta(days=5, hours=1)
    assert ttl("M1") == timedelta(days=5, minutes=1)
    assert ttl("W1") == timedelta(days=12)


def test_calendar_ttl():
    assert calendar_ttl("D1", "uk_index") == timedelta(days=5)  # Easter (4 days) + one D1 bar
    assert calendar_ttl("D1", "fx") == timedelta(days=4)
    assert calendar_ttl("H1", "equity") == timedelta(days=3, hours=1)
    assert calendar_ttl("d1", "eu_index") == timedelta(days=6)
    assert calendar_ttl("M5", "24x7") == timedelta(minutes=5)
    for tf in TIMEFRAMES:
        assert max(calendar_ttl(tf, c) for c in CALENDARS) == ttl(tf)
    with pytest.raises(ConfigError, match="unknown calendar"):
        calendar_ttl("D1", "nyse")


# --- the case: UK100 D1 over Easter 2024 ----------------------------------------------------------------

def _at(*a) -> datetime:
    return datetime(*a, tzinfo=UTC)


@pytest.mark.parametrize("server_tz", ["UTC", "NY+7"])
def test_uk100_easter_decisions_see_thursdays_bar(data_dir, server_tz):
    """No bars on Good Friday and Easter Monday: every decision until Tuesday's bar closes sees
    Thursday 28 March's bar (with a 4-day ttl, decisions on Tuesday saw nothing). Read on a UTC server
    clock, D1 bars close at midnight UTC: decisions on Tuesday 2 April at 12:00 and 23:00 UTC see
    Thursday's bar. On "NY+7" the facts are stated relative to the bars' own close times."""
    from mt5lab.bars.ingest import write
    from mt5lab.bars.readers import read_bars
    from mt5lab.features.build import build
    from mt5lab.storage import open_store
    from mt5lab.training.assemble import training_set

    bars = read_bars(UK100, symbol="UK100", timeframe="D1", server_tz=server_tz)
    store = open_store("local")
    write(store, bars, [])
    build(store, ["D1"], progress=False)
    # Thursday 28 March: o 7368.4 h 7485.7 l 7357.9 c 7442.5; Wednesday's close 7369.0 (the file).
    thursday = {"close": 7442.5, "log_return_1": math.log(7442.5 / 7369.0),
                "hl_range": (7485.7 - 7357.9) / 7442.5, "co_ratio": (7442.5 - 7368.4) / 7368.4}
    thu_close = bars.filter(pl.col("close") == 7442.5)["time"].item() + DAY
    tue_close = bars.filter(pl.col("close") == 7430.2)["time"].item() + DAY
    assert tue_close - thu_close == 5 * DAY  # Thursday's bar is 5 days old when Tuesday's closes
    decisions = [thu_close + k * timedelta(hours=6) for k in range(20)] + [tue_close - timedelta(seconds=1)]
    if server_tz == "UTC":
        assert tue_close == _at(2024, 4, 3)
        decisions += [_at(2024, 4, 2, 12), _at(2024, 4, 2, 23)]
    entities = pl.DataFrame({"symbol": "UK100", "event_timestamp": [*decisions, tue_close]},
                            schema_overrides={"event_timestamp": pl.Datetime("us", "UTC")})
    refs = ["ohlcv_features:close", "price_action:log_return_1", "price_action:hl_range",
            "price_action:co_ratio"]
    out = training_set(entities, refs, to="polars", store=store, progress=False)
    for i, t in enumerate(decisions):
        row = out.row(i, named=True)
        for name, want in thursday.items():
            assert row[name] == pytest.approx(want, rel=1e-12), (t, name)
    after = out.row(len(decisions), named=True)  # Tuesday's bar has closed: it replaces Thursday's
    assert after["close"] == 7430.2
    assert after["log_return_1"] == pytest.approx(math.log(7430.2 / 7442.5), rel=1e-12)
