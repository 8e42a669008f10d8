"""A multi-million-row MT5 export goes through ``mt5lab ingest`` in bounded memory.

The bound. Holding a file's bars at once costs at least 80 bytes per bar (eight 8-byte columns plus
the symbol), about 1.4x the ~58 bytes per line of an MT5 M1 export; the whole-file path (read, concat,
validate, merge) peaks near 5x. So the proof compares two runs of the real CLI, each in its own
process (peak RSS from ``wait4``): a 0.5M-row file and a 4M-row file. If memory grew with the
file, the extra 3.5M rows would add >= 1.4x their bytes; we require the peak to grow by less than
0.6x their bytes. Measured: +7 MiB on a quiet machine, +61 MiB under a loaded 2-core one (allocator
and read-ahead noise, independent of the file size), against >= 280 MiB if the rows were held.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

ROOT = Path(__file__).resolve().parents[1]
HEADER = b"<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>\n"
T0 = datetime(2012, 1, 2, tzinfo=UTC)

pytestmark = pytest.mark.slow


def write_export(path: Path, n: int, seed: int = 0) -> pl.DataFrame:
    """An MT5 M1 export of ``n`` bars, written in chunks; returns the first and last bars as expected."""
    rng = np.random.default_rng(seed)
    close = 1.3 + np.cumsum(rng.normal(0, 2e-5, n)).round(5)
    with open(path, "wb") as fh:
        fh.write(HEADER)
        for a in range(0, n, 1_000_000):
            b = min(n, a + 1_000_000)
            t = pl.datetime_range(T0 + a * timedelta(minutes=1), T0 + (b - 1) * timedelta(minutes=1), "1m",
                                  eager=True, time_unit="us")
            c = close[a:b]
            pl.DataFrame({"d": t.dt.strftime("%Y.%m.%d"), "t": t.dt.strftime("%H:%M:%S"), "o": c,
                          "h": c + 1e-4, "l": c - 1e-4, "c": c, "tv": np.arange(a, b) % 97 + 1,
                          "v": np.zeros(b - a, np.int64), "s": np.full(b - a, 3)}
                         ).write_csv(fh, separator="\t", include_header=False, float_precision=5)
    idx = [0, n - 1]
    return pl.DataFrame({"time": [T0 + i * timedelta(minutes=1) for i in idx],
                         "close": [round(float(close[i]), 5) for i in idx],
                         "tick_volume": [i % 97 + 1 for i in idx]},
                        schema_overrides={"time": pl.Datetime("us", "UTC")})


def ingest_peak_rss(path: Path, data: Path) -> tuple[int, subprocess.CompletedProcess]:
    """Run the real CLI; return its peak RSS in bytes (Linux ru_maxrss is KiB) and its output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MT5LAB_")}
    env |= {"MT5LAB_DATA_DIR": str(data), "TQDM_DISABLE": "1"}
    out_f, err_f = data.parent / "out.txt", data.parent / "err.txt"
    with open(out_f, "w") as out, open(err_f, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "mt5lab.cli", "ingest", str(path), "--symbol", "EURUSD",
                                 "--timeframe", "M1", "--calendar", "24x7", "--server-tz", "UTC"], stdout=out, stderr=err, env=env, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss * 1024, subprocess.CompletedProcess(proc.args, proc.returncode, out_f.read_text(),
                                                             err_f.read_text())


def test_multi_million_row_export_streams_in_bounded_memory(tmp_path):
    from mt5lab.storage.local import LocalStore

    runs = {}
    for n in (500_000, 4_000_000):
        d = tmp_path / f"run{n}"
        d.mkdir()
        path = d / "EURUSD_M1.csv"
        ends = write_export(path, n)
        peak, out = ingest_peak_rss(path, d / "data")
        assert out.returncode == 0, out.stderr[-2000:]
        assert f"ingested {n} bars: {n} new" in out.stdout
        store = LocalStore(d / "data")
        assert store.counts() == {"bars_m1": n}
        got = store.read_bars("M1", ["EURUSD"], start=ends["time"][0], end=ends["time"][0] + timedelta(minutes=1))
        last = store.read_bars("M1", ["EURUSD"], start=ends["time"][1])
        assert pl.concat([got, last]).select(ends.columns).equals(ends)
        runs[n] = (path.stat().st_size, peak)
        path.unlink()
    (small_size, small_peak), (big_size, big_peak) = runs[500_000], runs[4_000_000]
    growth, extra = big_peak - small_peak, big_size - small_size
    print(f"file {small_size / 2**20:.0f} MiB -> peak RSS {small_peak / 2**20:.0f} MiB; "
          f"file {big_size / 2**20:.0f} MiB -> peak RSS {big_peak / 2**20:.0f} MiB")
    assert extra > 150 * 2**20
    assert growth < 0.6 * extra, (f"peak RSS grew {growth / 2**20:.0f} MiB for {extra / 2**20:.0f} MiB more "
                                  f"input: the file is not streamed")
