"""Ingest into PostgreSQL: mt5lab's PostgresStore.write_bars against a plain executemany INSERT.

Runs against the machine's PostgreSQL (127.0.0.1:5432, trust) in a throwaway database (created
and dropped here). One run, side by side:

* mt5lab, initial load: N synthetic bars into empty tables (binary COPY, one transaction);
* mt5lab, re-ingest of the same N bars (staging table + ON CONFLICT ... IS DISTINCT FROM: all
  unchanged, nothing rewritten);
* mt5lab, append: the next 20 bars of every symbol (the daily case: binary COPY straight in);
* baseline: psycopg ``executemany`` of ``INSERT ... VALUES (...)`` into an identical table, on the
  first ``--baseline-rows`` bars (a slice: the full set would take minutes), as rows per second.

Goal: initial load >= 300,000 bars/s. The read back is checked equal to the input.

Besides wall time, each run reports the CPU seconds of this process and of its PostgreSQL backend
(from /proc; the server runs on this machine). The client encodes while the server inserts, so on
an otherwise idle machine with two cores the wall time tends to max(client CPU, server CPU): the
"idle est." column. On a busy machine the wall time is the honest number, and it is noisy.

    .venv/bin/python benchmarks/bench_ingest_pg.py [--symbols 1000] [--bars 1000] [--baseline-rows 50000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import synthetic_bars

GOAL = 300_000


def _cpu(pid: int) -> float:
    """User + system CPU seconds of a local process (0.0 if /proc cannot tell)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


class Timer:
    """Wall, client CPU and server-backend CPU of one block."""

    def __init__(self, backend_pid: int):
        self.pid = backend_pid

    def __enter__(self):
        self.t, self.c, self.s = time.perf_counter(), time.process_time(), _cpu(self.pid)
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.t
        self.client = time.process_time() - self.c
        self.server = _cpu(self.pid) - self.s


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--symbols", type=int, default=1000)
    ap.add_argument("--bars", type=int, default=1000)
    ap.add_argument("--baseline-rows", type=int, default=50_000)
    a = ap.parse_args()

    import polars as pl
    from psycopg import sql

    from mt5lab.storage.pg_schema import bars_table
    from mt5lab.storage.postgres import PostgresStore
    from mt5lab.testing.sandbox import postgres_database

    bars = synthetic_bars(a.symbols, a.bars)
    n = bars.height
    nxt = synthetic_bars(a.symbols, 20, seed=1, start=bars["time"].max() + timedelta(days=1))
    rows = []
    with postgres_database() as db:
        st = PostgresStore("127.0.0.1", 5432, db, "postgres", "", "disable")
        st.migrate()
        pid = st._db.info.backend_pid

        with Timer(pid) as tm:
            r = st.write_bars(bars)
        assert r.inserted == n, r
        rows.append(("mt5lab initial load (COPY binary)", n, tm))

        with Timer(pid) as tm:
            r = st.write_bars(bars)
        assert r.unchanged == n, r
        rows.append(("mt5lab re-ingest, all unchanged (upsert)", n, tm))

        with Timer(pid) as tm:
            r = st.write_bars(nxt)
        assert r.inserted == nxt.height, r
        rows.append(("mt5lab append 20 bars/symbol", nxt.height, tm))

        back = st.read_bars("D1")
        want = pl.concat([bars, nxt]).sort(["symbol", "time"])
        assert back.equals(want), "read back differs from the input"

        # Baseline: the same table layout, rows sent one by one through executemany.
        part = bars.head(a.baseline_rows)
        cols = [c for c in part.columns if c != "timeframe"]
        values = part.select(cols).rows()
        with st.connect() as conn:
            conn.execute(sql.SQL("CREATE TABLE public.baseline (LIKE {} INCLUDING ALL)").format(bars_table("D1")))
            stmt = sql.SQL("INSERT INTO public.baseline ({}) VALUES ({})").format(
                sql.SQL(", ").join(map(sql.Identifier, cols)), sql.SQL(", ").join(sql.Placeholder() * len(cols)))
            with Timer(conn.info.backend_pid) as tm, conn.transaction(), conn.cursor() as cur:
                cur.executemany(stmt, values)
            got = conn.execute("SELECT count(*) FROM public.baseline").fetchone()[0]
            assert got == len(values)
        rows.append((f"baseline executemany INSERT ({len(values):,}-row slice)", len(values), tm))
        st.close()

    base = rows[-1][1] / rows[-1][2].wall
    print(f"\nIngest into PostgreSQL ({a.symbols:,} symbols x {a.bars:,} D1 bars; "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})\n")
    print(f"{'method':<50} {'bars':>10} {'wall s':>7} {'bars/s':>9} {'vs base':>8} "
          f"{'client CPU':>10} {'server CPU':>10} {'idle est.':>10}")
    for name, count, tm in rows:
        rate = count / tm.wall
        est = count / max(tm.client, tm.server, 1e-9)
        print(f"{name:<50} {count:>10,} {tm.wall:>7.2f} {rate:>9,.0f} {rate / base:>7.1f}x "
              f"{tm.client:>9.2f}s {tm.server:>9.2f}s {est:>10,.0f}")
    initial = rows[0][1] / rows[0][2].wall
    est = rows[0][1] / max(rows[0][2].client, rows[0][2].server, 1e-9)
    print(f"\ngoal: initial load >= {GOAL:,} bars/s: {'met' if initial >= GOAL else 'NOT met'} "
          f"by wall time ({initial:,.0f} bars/s at load {os.getloadavg()[0]:.1f}); "
          f"CPU-bound estimate on an idle machine: {est:,.0f} bars/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
