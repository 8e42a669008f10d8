"""Property-based fuzzing: arbitrary bytes and arbitrary frames never crash the readers or the
validator with anything but mt5lab's own errors (:class:`mt5lab.errors.Mt5LabError` subclasses).

Examples are derandomized (the same every run, so CI is stable) unless ``MT5LAB_FUZZ_RANDOM=1``;
``MT5LAB_FUZZ_EXAMPLES`` scales the number of examples up for a longer local hunt.
"""

from __future__ import annotations

import io
import os
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mt5lab.catalog import BAR_COLUMNS, TIMEFRAMES
from mt5lab.errors import Mt5LabError

N = int(os.environ.get("MT5LAB_FUZZ_EXAMPLES", "120"))
FUZZ = settings(max_examples=N, deadline=None, database=None,
                derandomize=os.environ.get("MT5LAB_FUZZ_RANDOM", "") != "1",
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def naive(*args) -> datetime:
    return datetime(*args, tzinfo=UTC).replace(tzinfo=None)


DIR = Path(tempfile.mkdtemp(prefix="mt5lab-fuzz-"))
MT5_HEADERS = ["<DATE>", "<TIME>", "<OPEN>", "<HIGH>", "<LOW>", "<CLOSE>", "<TICKVOL>", "<VOL>", "<SPREAD>"]
CSV_HEADERS = ["time", "date", "symbol", "timeframe", "open", "high", "low", "close", "tick_volume", "volume",
               "real_volume", "spread", "", "Unnamed: 0"]
ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "latin-1"]

# -- text that looks like a bar file, with hostile fields --------------------------------------------
field = st.one_of(
    st.sampled_from(["2024.01.02", "2024.13.45", "00:00:00", "23:59", "24:00:00", "1.1", "-0", "nan", "inf",
                     "-inf", "1e308", "1e-320", "0x10", "", " ", "\"", "\"\"", "NULL", "2024-01-02T00:00:00Z",
                     "2024-03-31 02:30:00", "1704153600", "9" * 30, "EURUSD", "H1", "M15"]),
    st.text(max_size=12),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


@st.composite
def text_file(draw) -> bytes:
    header = draw(st.one_of(st.just(MT5_HEADERS), st.lists(st.sampled_from(CSV_HEADERS + MT5_HEADERS),
                                                            min_size=1, max_size=10)))
    sep = draw(st.sampled_from(["\t", ",", ";", "|"]))
    nl = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    rows = draw(st.lists(st.lists(field, min_size=0, max_size=len(header) + 2), max_size=6))
    text = nl.join([sep.join(header), *(sep.join(r) for r in rows)])
    if draw(st.booleans()):
        text += nl
    enc = draw(st.sampled_from(ENCODINGS))
    data = text.encode(enc, errors="replace")
    cut = draw(st.integers(min_value=0, max_value=len(data)))
    return data[:cut] if draw(st.integers(0, 4)) == 0 else data


def _read_all(path: Path, fmt: str, **kw) -> None:
    from mt5lab.bars.readers import iter_bars

    for _ in iter_bars(path, symbol=kw.get("symbol", "FUZZ"), timeframe=kw.get("timeframe", "H1"), format=fmt,
                       server_tz=kw.get("server_tz", "UTC"), batch_rows=kw.get("batch_rows", 3)):
        pass


def _only_own_errors(fn, *args, **kw) -> None:
    try:
        fn(*args, **kw)
    except Mt5LabError as exc:
        assert "\n" not in str(exc).strip(), repr(str(exc))  # one line, whatever the input
    # anything else propagates and fails the test with the input that caused it


@pytest.mark.parametrize("fmt", ["auto", "mt5", "csv"])
@FUZZ
@given(data=st.one_of(st.binary(max_size=600), text_file()), tf=st.sampled_from(["H1", "D1", "W1", "M1"]),
       tz=st.sampled_from(["UTC", "Europe/London", "NY+7", "Etc/GMT-2"]))
def test_text_readers_raise_only_own_errors(fmt, data, tf, tz):
    path = DIR / f"fuzz-{fmt}.csv"
    path.write_bytes(data)
    _only_own_errors(_read_all, path, fmt, timeframe=tf, server_tz=tz)


# -- Parquet: arbitrary bytes, and real Parquet files with arbitrary columns and types -------------
arrow_column = st.sampled_from([
    pa.array([1.5, None, float("nan")]), pa.array([1, -2, None], pa.int64()), pa.array(["a", "", None]),
    pa.array([True, False, None]), pa.array([b"\x00", b"\xff", None], pa.binary()),
    pa.array([naive(2024, 1, 2), None, naive(2024, 1, 2, 1)], pa.timestamp("us")),
    pa.array([datetime(2024, 1, 2, tzinfo=UTC)] * 3, pa.timestamp("ns", tz="Asia/Tokyo")),
    pa.array([0, 3600, -1], pa.int32()), pa.array([[1], [], None], pa.list_(pa.int64())),
    pa.array([{"x": 1}, None, {"x": 2}], pa.struct([("x", pa.int64())])),
    pa.array([1, 2, 3], pa.uint64()), pa.array([1.0, 2.0, 3.0], pa.float16()),
    pa.array([naive(2024, 1, 2).date()] * 3, pa.date32()), pa.nulls(3),
    pa.array(["2024-01-02 00:00:00", "x", "2024-01-02T01:00:00+01:00"]),
])


@st.composite
def parquet_file(draw) -> bytes:
    names = draw(st.lists(st.sampled_from(CSV_HEADERS), min_size=1, max_size=10, unique=True))
    table = pa.table({n: draw(arrow_column) for n in names})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    data = buf.getvalue()
    if draw(st.integers(0, 5)) == 0:  # damage it
        i = draw(st.integers(0, len(data) - 1))
        data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]
    return data


@FUZZ
@given(data=st.one_of(st.binary(max_size=400), parquet_file()), symbol=st.sampled_from([None, "FUZZ"]))
def test_parquet_reader_raises_only_own_errors(data, symbol):
    path = DIR / "fuzz.parquet"
    path.write_bytes(data)
    _only_own_errors(_read_all, path, "auto", symbol=symbol)


# -- validate_bars on arbitrary frames ---------------------------------------------------------------
times = st.one_of(
    st.datetimes(min_value=naive(1900, 1, 1), max_value=naive(2200, 1, 1), timezones=st.just(UTC)),
    st.datetimes(min_value=naive(1970, 1, 1), max_value=naive(2100, 1, 1)).map(
        lambda t: t.replace(minute=0, second=0, microsecond=0, tzinfo=UTC)),
    st.none(),
)
prices = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.none(), st.integers(-5, 5).map(float))
ints = st.one_of(st.integers(min_value=-(2**63), max_value=2**63 - 1), st.none())


@st.composite
def bar_frame(draw) -> pl.DataFrame:
    n = draw(st.integers(0, 8))
    sym = st.one_of(st.sampled_from(["EURUSD", "GOOG", "", " x", "a" * 70]), st.text(max_size=8), st.none())
    tf = st.one_of(st.sampled_from(list(TIMEFRAMES)), st.sampled_from(["h1", "H2", ""]), st.none())
    cols = {
        "symbol": pl.Series(draw(st.lists(sym, min_size=n, max_size=n)), dtype=pl.String),
        "timeframe": pl.Series(draw(st.lists(tf, min_size=n, max_size=n)), dtype=pl.String),
        "time": pl.Series(draw(st.lists(times, min_size=n, max_size=n)), dtype=pl.Datetime("us", "UTC")),
        **{p: pl.Series(draw(st.lists(prices, min_size=n, max_size=n)), dtype=pl.Float64)
           for p in ("open", "high", "low", "close")},
        **{v: pl.Series(draw(st.lists(ints, min_size=n, max_size=n)), dtype=pl.Int64)
           for v in ("tick_volume", "spread", "real_volume")},
    }
    frame = pl.DataFrame(cols)
    twist = draw(st.sampled_from(["none", "drop", "string", "naive", "zone", "row", "date", "sorted"]))
    if twist == "drop":
        frame = frame.drop(draw(st.sampled_from(list(BAR_COLUMNS))))
    elif twist == "string":
        frame = frame.with_columns(pl.col(draw(st.sampled_from(["open", "tick_volume", "time"]))).cast(pl.String))
    elif twist == "naive":
        frame = frame.with_columns(pl.col("time").dt.replace_time_zone(None))
    elif twist == "zone":
        frame = frame.with_columns(pl.col("time").dt.convert_time_zone("America/New_York"))
    elif twist == "row":
        frame = frame.with_columns(source_row=pl.Series(draw(st.lists(ints, min_size=n, max_size=n)), dtype=pl.Int64))
    elif twist == "date":
        frame = frame.with_columns(pl.col("time").dt.date())
    elif twist == "sorted" and n:
        t0 = datetime(2024, 1, 2, tzinfo=timezone.utc)  # noqa: UP017 - both spellings are fine
        frame = frame.with_columns(time=pl.Series([t0 + i * timedelta(hours=1) for i in range(n)]),
                                   symbol=pl.lit("EURUSD"), timeframe=pl.lit("H1"))
    return frame


@FUZZ
@given(frame=bar_frame(), calendar=st.sampled_from(["fx", "equity", "24x7"]), pandas=st.booleans())
def test_validate_raises_only_own_errors(frame, calendar, pandas):
    from mt5lab.bars.validate import validate_bars

    arg = frame.to_pandas() if pandas and frame.width else frame
    _only_own_errors(validate_bars, arg, source="fuzz", calendar=calendar)


# -- integer time columns of every width and sign: parsed in the detected unit, or one-line errors ---
INT_TYPES = [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64()]


@pytest.mark.parametrize("arrow_type", INT_TYPES, ids=str)
@FUZZ
@given(values=st.lists(st.integers(min_value=-(2**63), max_value=2**64 - 1), min_size=1, max_size=5))
def test_integer_time_columns_of_every_width(arrow_type, values):
    import warnings

    from mt5lab.bars.clock import EPOCH_UNITS, TIME_RANGE
    from mt5lab.bars.readers import read_bars

    bits, signed = arrow_type.bit_width, pa.types.is_signed_integer(arrow_type)
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    values = [min(max(v, lo), hi) for v in values]
    path = DIR / f"int-{arrow_type}.parquet"
    n = len(values)
    pq.write_table(pa.table({"time": pa.array(values, arrow_type), "open": [1.0] * n, "high": [1.1] * n,
                             "low": [0.9] * n, "close": [1.0] * n, "tick_volume": [1] * n}), path)
    # the expected instants, written independently: the unit by the first value's magnitude
    unit, per_s = next((u, {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[u])
                       for u, below in EPOCH_UNITS if abs(values[0]) < below)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    lo_us, hi_us = ((b - epoch) // timedelta(microseconds=1) for b in TIME_RANGE)
    want = []
    for v in values:
        us = v * 10**6 // per_s
        want.append(epoch + timedelta(microseconds=us) if lo_us <= us < hi_us else None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            got = read_bars(path, symbol="X", timeframe="H1", server_tz="UTC")
        except Mt5LabError as exc:
            assert "\n" not in str(exc)
            if v_bad := [i for i, w in enumerate(want) if w is None]:
                assert exc.rule == "time out of range" and exc.row == v_bad[0] + 1, str(exc)
                assert f"epoch {unit}" in exc.detail
            else:
                raise
            return
    assert None not in want, f"read {got['time'].to_list()} for {values} (unit {unit})"
    assert got["time"].to_list() == want
