"""The streaming ingest stores exactly what the whole-file path stores, with tiny batches so that
every window of the sorted merge and every batch boundary is exercised: revisions of stored bars,
new bars, an interleaved multi-symbol file and a re-run that changes nothing. Both profiles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from mt5lab.bars.ingest import ingest_files, load_samples, write
from mt5lab.bars.readers import read_bars
from mt5lab.bars.validate import validate_bars


def _mt5_overlapping(path: Path) -> Path:
    """EURUSD H1 from inside the sample (revised closes) to beyond its end (new bars)."""
    rng, rows, t = np.random.default_rng(1), [], datetime(2018, 2, 1, tzinfo=UTC)
    for i in range(300):
        if t.weekday() < 5:
            c = round(1.2 + rng.normal(0, 0.001), 5)
            rows.append(f"{t:%Y.%m.%d}\t{t:%H:%M:%S}\t{c}\t{c + 0.001}\t{c - 0.001}\t{c}\t{i + 1}\t0\t2")
        t += timedelta(hours=1)
    path.write_text("<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>\n" + "\n".join(rows) + "\n")
    return path


def _interleaved(path: Path) -> Path:
    lines = ["symbol,time,open,high,low,close,tick_volume"]
    for i in range(118):  # Monday 00:00 .. Friday 21:00 UTC: inside FX hours (closes 22:00 UTC in winter)
        t = datetime(2017, 1, 2, tzinfo=UTC) + timedelta(hours=i)
        for s in ("ZZZ", "AAA", "EURUSD", "'; DROP TABLE x; --"):
            lines.append(f'"{s}",{t.isoformat()},1,2,0.5,{1 + (i % 7) / 10},{i}')
    path.write_text("\n".join(lines) + "\n")
    return path


def _stores(profile: str, request, tmp_path):
    if profile == "local":
        from mt5lab.storage.local import LocalStore

        return LocalStore(tmp_path / "a"), LocalStore(tmp_path / "b")
    from mt5lab.storage.postgres import PostgresStore
    from mt5lab.testing.sandbox import postgres_database
    from tests.conftest import require_service

    require_service("PostgreSQL", "127.0.0.1", 5432)
    stores = []
    for _ in range(2):
        cm = postgres_database()
        name = cm.__enter__()
        request.addfinalizer(lambda cm=cm: cm.__exit__(None, None, None))
        st = PostgresStore("127.0.0.1", 5432, name, "postgres", "", "disable")
        request.addfinalizer(st.close)
        stores.append(st)
    return tuple(stores)


@pytest.mark.parametrize("profile", ["local", pytest.param("postgres", marks=pytest.mark.services)])
def test_streaming_equals_whole_file_ingest(profile, request, tmp_path):
    whole, streamed = _stores(profile, request, tmp_path)
    for st in (whole, streamed):
        write(st, *load_samples())
    files = [(_mt5_overlapping(tmp_path / "eurusd.txt"), "EURUSD"), (_interleaved(tmp_path / "multi.csv"), None)]
    refs = []
    for path, symbol in files:
        bars = read_bars(path, symbol=symbol, timeframe="H1", server_tz="NY+7")  # MT5 server weekdays  # the whole file at once: the reference
        ref = write(whole, bars.drop("source_row"), [validate_bars(bars, source=str(path), calendar="fx",
                                                                   server_tz="NY+7")])
        got = ingest_files(streamed, [path], symbol=symbol, timeframe="H1", server_tz="NY+7", batch_rows=37, progress=False)
        assert (got.rows, got.write) == (ref.rows, ref.write)
        assert [r.gaps.height for r in got.reports] == [r.gaps.height for r in ref.reports]
        again = ingest_files(streamed, [path], symbol=symbol, timeframe="H1", server_tz="NY+7", batch_rows=50, progress=False)
        assert (again.write.inserted, again.write.updated, again.write.unchanged) == (0, 0, ref.rows)
        refs.append(ref.write)
    # The first file revises stored bars and appends new ones; the second interleaves 4 symbols,
    # one of them (EURUSD) already stored, in 2017: before the sample starts.
    assert refs[0].inserted > 0 and refs[0].updated > 0
    assert refs[1] == type(refs[1])(472, 0, 0)
    for tf in ("D1", "H1"):
        assert streamed.read_bars(tf).equals(whole.read_bars(tf))
