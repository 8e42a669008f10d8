"""Market calendars: the FX week boundary in both DST regimes, expected bars, gaps, staleness."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from mt5lab.bars.calendars import (
    expected_bar_opens,
    expected_latest_close,
    find_gaps,
    is_open,
    market_closed_between,
    open_expr,
)
from mt5lab.errors import ConfigError

NY = ZoneInfo("America/New_York")
H = timedelta(hours=1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def series(times: list[datetime]) -> pl.Series:
    return pl.Series("time", times, pl.Datetime("us", "UTC"))


# --- is_open around the New York 17:00 boundary --------------------------------------------------

@pytest.mark.parametrize(
    ("t", "expected"),
    [
        # summer (EDT, UTC-4): Friday close and Sunday open at 21:00 UTC
        (utc(2024, 7, 5, 20, 59), True),
        (utc(2024, 7, 5, 21, 0), False),
        (utc(2024, 7, 6, 12, 0), False),
        (utc(2024, 7, 7, 20, 59), False),
        (utc(2024, 7, 7, 21, 0), True),
        # winter (EST, UTC-5): the same boundaries at 22:00 UTC
        (utc(2024, 1, 5, 21, 59), True),
        (utc(2024, 1, 5, 22, 0), False),
        (utc(2024, 1, 7, 21, 59), False),
        (utc(2024, 1, 7, 22, 0), True),
        # mid-week and the small hours of Monday
        (utc(2024, 1, 10, 3, 0), True),
        (utc(2024, 1, 8, 0, 0), True),
    ],
)
def test_fx_is_open_at_the_new_york_1700_boundary(t, expected):
    assert is_open(t, "fx") is expected
    assert is_open(t.astimezone(NY), "fx") is expected  # the zone of the argument does not matter


def test_fx_boundary_expressed_in_new_york_time():
    for day in (datetime(2024, 3, 15, tzinfo=NY), datetime(2024, 11, 8, tzinfo=NY)):  # both Fridays
        assert is_open(day.replace(hour=16, minute=59), "fx")
        assert not is_open(day.replace(hour=17), "fx")
        sunday = day + timedelta(days=2)
        assert not is_open(sunday.replace(hour=16, minute=59), "fx")
        assert is_open(sunday.replace(hour=17), "fx")


def test_equity_and_24x7():
    assert is_open(utc(2024, 1, 8, 0, 0), "equity")  # Monday
    assert is_open(utc(2024, 1, 12, 23, 59), "equity")  # Friday
    assert not is_open(utc(2024, 1, 13, 12, 0), "equity")  # Saturday
    assert not is_open(utc(2024, 1, 14, 12, 0), "equity")  # Sunday
    assert is_open(utc(2024, 1, 13, 12, 0), "24x7")


def test_naive_datetime_and_unknown_calendar_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        is_open(datetime(2024, 1, 8, 12, 0), "fx")  # noqa: DTZ001 - the point of the test
    with pytest.raises(ConfigError, match="unknown calendar 'nyse'"):
        is_open(utc(2024, 1, 8), "nyse")


def test_vectorised_open_expr_agrees_with_is_open_across_dst_changes():
    # March and November 2024 contain the US and EU DST changes
    for start in (utc(2024, 3, 1), utc(2024, 10, 20)):
        times = pl.datetime_range(start, start + timedelta(days=21), "30m", time_zone="UTC", eager=True)
        got = pl.DataFrame({"t": times}).select(open_expr(pl.col("t"), "fx")).to_series().to_list()
        assert got == [is_open(t, "fx") for t in times.to_list()]


# --- expected bar opens ----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("sunday", "open_utc"),
    [(utc(2024, 1, 7), 22), (utc(2024, 7, 7), 21), (utc(2024, 3, 10), 21), (utc(2024, 11, 3), 22)],
)
def test_an_fx_week_has_120_hourly_bars(sunday, open_utc):
    opens = expected_bar_opens(sunday, sunday + timedelta(days=6), "H1", "fx")
    assert opens.len() == 120
    assert opens[0] == sunday.replace(hour=open_utc)
    assert opens[-1] == sunday + timedelta(days=5, hours=open_utc - 1)
    assert opens.dtype == pl.Datetime("us", "UTC")


def test_expected_d1_w1_and_bounds():
    d1 = expected_bar_opens(utc(2024, 1, 6), utc(2024, 1, 14), "D1", "fx")
    assert [t.day for t in d1.to_list()] == [8, 9, 10, 11, 12]
    assert expected_bar_opens(utc(2024, 1, 6), utc(2024, 1, 14), "D1", "24x7").len() == 9
    w1_fx = expected_bar_opens(utc(2024, 1, 1), utc(2024, 1, 31), "W1", "fx")
    assert [t.weekday() for t in w1_fx.to_list()] == [6, 6, 6, 6]  # Sundays
    w1_eq = expected_bar_opens(utc(2024, 1, 1), utc(2024, 1, 31), "W1", "equity")
    assert [t.day for t in w1_eq.to_list()] == [1, 8, 15, 22, 29]  # Mondays
    # [start, end] inclusive; start rounded up to the next bar open
    m15 = expected_bar_opens(utc(2024, 1, 9, 10, 1), utc(2024, 1, 9, 11, 0), "M15", "fx")
    assert [t.minute for t in m15.to_list()] == [15, 30, 45, 0]
    assert expected_bar_opens(utc(2024, 1, 9), utc(2024, 1, 8), "H1", "fx").is_empty()


# --- gaps ------------------------------------------------------------------------------------------

def test_d1_fx_weekend_is_not_a_gap_but_a_missing_wednesday_is():
    full = expected_bar_opens(utc(2024, 1, 1), utc(2024, 1, 26), "D1", "fx")
    assert find_gaps(full, "D1", "fx").is_empty()
    with_sunday = full.append(series([utc(2024, 1, 14)])).sort()  # a broker's Sunday bar is allowed
    assert find_gaps(with_sunday, "D1", "fx").is_empty()
    gaps = find_gaps(full.filter(full != utc(2024, 1, 10)), "D1", "fx")
    assert gaps.to_dicts() == [{"gap_start": utc(2024, 1, 10), "gap_end": utc(2024, 1, 10), "missing_bars": 1}]


def test_h1_fx_weekend_is_not_a_gap_but_missing_hours_are():
    full = expected_bar_opens(utc(2024, 1, 7), utc(2024, 1, 20), "H1", "fx")
    assert full.len() == 240
    assert find_gaps(full, "H1", "fx").is_empty()
    holes = [utc(2024, 1, 10, h) for h in (10, 11, 12)]
    gaps = find_gaps(full.filter(~full.is_in(series(holes).implode())), "H1", "fx")
    assert gaps.to_dicts() == [{"gap_start": holes[0], "gap_end": holes[-1], "missing_bars": 3}]
    wednesday = full.filter(full.dt.date() != datetime(2024, 1, 10).date())  # noqa: DTZ001
    gaps = find_gaps(wednesday, "H1", "fx")
    assert gaps["missing_bars"].to_list() == [24]
    assert gaps["gap_start"][0] == utc(2024, 1, 10, 0) and gaps["gap_end"][0] == utc(2024, 1, 10, 23)


def test_missing_hours_on_both_sides_of_a_weekend_are_one_gap():
    full = expected_bar_opens(utc(2024, 1, 7), utc(2024, 1, 20), "H1", "fx")
    cut = full.filter((full < utc(2024, 1, 12, 20)) | (full >= utc(2024, 1, 15, 2)))
    gaps = find_gaps(cut, "H1", "fx")
    # Friday 20:00 and 21:00 UTC, then Sunday 22:00 .. Monday 01:00 UTC: 2 + 4 bars
    assert gaps.to_dicts() == [
        {"gap_start": utc(2024, 1, 12, 20), "gap_end": utc(2024, 1, 15, 1), "missing_bars": 6}
    ]


def test_w1_gaps_compare_weeks_whatever_the_stamp_day():
    sundays = expected_bar_opens(utc(2024, 1, 1), utc(2024, 3, 1), "W1", "fx")
    assert find_gaps(sundays, "W1", "fx").is_empty()
    gaps = find_gaps(sundays.gather([0, 1, 3, 4]), "W1", "fx")
    assert gaps.to_dicts() == [{"gap_start": sundays[2], "gap_end": sundays[2], "missing_bars": 1}]
    mondays = expected_bar_opens(utc(2024, 1, 1), utc(2024, 3, 1), "W1", "equity")
    gaps = find_gaps(mondays.gather([0, 3]), "W1", "equity")
    assert gaps.to_dicts() == [{"gap_start": mondays[1], "gap_end": mondays[2], "missing_bars": 2}]


def test_intraday_equity_counts_whole_missing_weekdays_only():
    days = [utc(2024, 1, d) for d in (8, 9, 10, 11, 12, 15, 16)]
    session = [d + timedelta(hours=h) for d in days for h in range(14, 21)]  # 14:00..20:00 UTC
    t = series(session)
    assert find_gaps(t, "H1", "equity").is_empty()  # nights and the weekend are not gaps
    no_wed = t.filter(t.dt.day() != 10)
    assert find_gaps(no_wed, "H1", "equity").to_dicts() == [
        {"gap_start": utc(2024, 1, 10, 0), "gap_end": utc(2024, 1, 10, 23), "missing_bars": 24}
    ]


def test_24x7_weekend_is_a_gap_and_trivial_inputs():
    t = series([utc(2024, 1, 12), utc(2024, 1, 15)])
    assert find_gaps(t, "D1", "24x7")["missing_bars"].to_list() == [2]
    assert find_gaps(t, "D1", "fx").is_empty()
    assert find_gaps(series([]), "H1", "fx").schema == {
        "gap_start": pl.Datetime("us", "UTC"), "gap_end": pl.Datetime("us", "UTC"), "missing_bars": pl.Int64}
    assert find_gaps(series([utc(2024, 1, 8)]), "H1", "fx").is_empty()


# --- closure and staleness -------------------------------------------------------------------------

def test_market_closed_between():
    assert market_closed_between(utc(2024, 1, 8), utc(2024, 1, 15), "fx") == timedelta(hours=48)
    assert market_closed_between(utc(2024, 1, 12, 20), utc(2024, 1, 13), "fx") == timedelta(hours=2)
    assert market_closed_between(utc(2024, 1, 9), utc(2024, 1, 10), "fx") == timedelta(0)
    assert market_closed_between(utc(2024, 1, 10), utc(2024, 1, 9), "fx") == timedelta(0)
    # US DST starts Sunday 10 March 2024: Friday close 22:00 UTC, Sunday open 21:00 UTC
    assert market_closed_between(utc(2024, 3, 8), utc(2024, 3, 11), "fx") == timedelta(hours=47)
    # US DST ends Sunday 3 November 2024: Friday close 21:00 UTC, Sunday open 22:00 UTC
    assert market_closed_between(utc(2024, 11, 1), utc(2024, 11, 4), "fx") == timedelta(hours=49)
    # two weekends and Martin Luther King Jr. Day (Monday 15 January 2024), an NYSE holiday
    assert market_closed_between(utc(2024, 1, 8), utc(2024, 1, 22), "equity") == timedelta(days=5)
    # Christmas Day 2024 (Wednesday) on fx: the NY+7 server day, 17:00 New York 24th .. 25th
    assert market_closed_between(utc(2024, 12, 24), utc(2024, 12, 26), "fx") == timedelta(hours=24)
    assert market_closed_between(utc(2024, 12, 24, 22), utc(2024, 12, 25, 22), "fx") == timedelta(hours=24)
    assert market_closed_between(utc(2024, 1, 8), utc(2024, 1, 22), "24x7") == timedelta(0)


@pytest.mark.parametrize(
    ("now", "timeframe", "expected"),
    [
        (utc(2024, 7, 6, 12), "H1", utc(2024, 7, 5, 21)),  # summer Saturday: Friday 21:00 UTC
        (utc(2024, 1, 6, 12), "H1", utc(2024, 1, 5, 22)),  # winter Saturday: Friday 22:00 UTC
        (utc(2024, 7, 7, 20, 30), "H1", utc(2024, 7, 5, 21)),  # Sunday before the open
        (utc(2024, 7, 7, 22, 30), "H1", utc(2024, 7, 7, 22)),  # first Sunday bar has closed
        (utc(2024, 7, 10, 10, 30), "H1", utc(2024, 7, 10, 10)),
        (utc(2024, 7, 10, 10, 0), "H1", utc(2024, 7, 10, 10)),  # a bar closing exactly now counts
        (utc(2024, 7, 10, 10, 7), "M5", utc(2024, 7, 10, 10, 5)),
        (utc(2024, 7, 6, 12), "D1", utc(2024, 7, 6)),  # Friday's D1 bar closes at midnight UTC
        (utc(2024, 7, 8, 12), "D1", utc(2024, 7, 6)),
        (utc(2024, 7, 10, 12), "W1", utc(2024, 7, 14) - timedelta(weeks=1)),
    ],
)
def test_expected_latest_close(now, timeframe, expected):
    assert expected_latest_close(now, timeframe, "fx") == expected


def test_friday_close_checked_on_saturday_is_not_stale():
    last_bar_close = utc(2024, 7, 5, 20) + H  # the last H1 bar of the week opened 20:00 UTC
    for now in (utc(2024, 7, 6, 0, 1), utc(2024, 7, 6, 23), utc(2024, 7, 7, 20, 59)):
        assert last_bar_close >= expected_latest_close(now, "H1", "fx")
    assert last_bar_close < expected_latest_close(utc(2024, 7, 7, 22, 1), "H1", "fx")  # now it is
