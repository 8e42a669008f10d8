"""Training sets: mt5lab vs Feast's get_historical_features, side by side, one run.

Setup (cached in --data, rebuilt when missing): 10,000 synthetic symbols x 500 D1 bars = 5,000,000
bars; their 42 features are written straight into the profile's offline store (no ingest), and the
Feast project is applied. Entity frames: 1,000,000 random (symbol, time) rows over the whole range
(times on and between bar closes, before the first bar, after ttl expiry, unknown symbols) and its
first 10,000 rows.

The postgres profile's database (``mt5lab_bench_training``) is kept between runs and loaded once
from the local store's Parquet file by binary COPY (same rows, same created_timestamp).

Measured, each in a fresh subprocess so that peak RSS is the run's own:
* local, 1,000,000 rows x 42 features: the first call after a write (it builds the memory-mapped
  mirror, mt5lab.training.pit_mirror), then warm calls to pandas (goal <= 3 s) and to polars (goal
  <= 1.0 s), against the plain read_features path (MT5LAB_PIT_MIRROR=0) as the baseline;
* postgres, the same 1,000,000 rows to pandas and to polars (goal <= 5 s, peak RSS <= 4 GiB), with
  the peak RSS of the PostgreSQL backends doing the join, and a check that the frame equals the
  local profile's;
* mt5lab and Feast on the same 10,000-row frame, per profile; the outputs are checked equal
  (mt5lab.training.pit_feast) before the ratio is printed (goal >= 300x local, >= 100x postgres).

    .venv/bin/python benchmarks/bench_training_set.py [--profiles local,postgres]
        [--feast-profiles local,postgres] [--rows 1000000] [--fresh-pg]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
GIB = 2**30


def _rss_peak() -> int:
    """This process's own peak RSS in bytes: ``VmHWM`` of its address space (Linux). Not
    ``ru_maxrss``: Linux carries that across ``execve`` from the forking parent (a child of a
    7 GiB parent would report 7 GiB), while a fresh address space starts its ``VmHWM`` at zero."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # not Linux: best effort


class _ServerRss:
    """Peak of the summed RSS of the PostgreSQL backends connected to ``database``, and their CPU
    seconds (user + system; the load-independent server part of a run, up to the last 20 ms of
    each backend) (Linux /proc, sampled every 20 ms in a thread)."""

    def __init__(self, database: str):
        import threading

        self.database, self.peak, self._stop, self._seen = database, 0, threading.Event(), {}
        self.cpu_ticks: dict[str, int] = {}
        self._tick = os.sysconf("SC_CLK_TCK")
        self.peak = self._sample()  # backends connected before the run: their CPU so far is known
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> int:
        total = 0
        for pid in (p for p in os.listdir("/proc") if p.isdigit()):
            try:
                mine = self._seen.get(pid)
                if mine is None:  # command lines are read once per process (cheap sampling) ...
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                    mine = cmd.startswith(b"postgres: ") and self.database.encode() in cmd
                    if mine or not cmd.startswith(b"postgres: "):  # ... except other postgres ones: a
                        self._seen[pid] = mine  # new backend names its database once authenticated
                if not mine:
                    continue
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                self.cpu_ticks[pid] = int(stat[11]) + int(stat[12])  # utime + stime
            except OSError:
                continue
        return total

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._sample())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak

    def cpu_seconds(self, before: dict[str, int]) -> float:
        """CPU seconds of the backends since ``before`` (a copy of :attr:`cpu_ticks`)."""
        return sum(t - before.get(pid, 0) for pid, t in self.cpu_ticks.items()) / self._tick


# --- child: one measured run ----------------------------------------------------------------------

def child(args: dict) -> None:
    import pandas as pd

    import mt5lab  # noqa: F401 - imports are not part of the measurement
    from mt5lab.training.assemble import training_set

    ent = pd.read_parquet(args["entities"])
    if args.get("rows"):
        ent = ent.iloc[: args["rows"]].reset_index(drop=True)
    sampler = _ServerRss(PG_DATABASE) if args.get("server_rss") else None
    srv_before = dict(sampler.cpu_ticks) if sampler else {}
    before = _rss_peak()
    t0, c0 = time.perf_counter(), time.process_time()
    if args.get("engine") == "feast":
        from mt5lab.training.pit_feast import feast_historical

        out = feast_historical(ent, "mt5_v1", profile=args["profile"])
    else:
        out = training_set(ent, "mt5_v1", profile=args["profile"], to=args.get("to", "pandas"),
                           progress=False)
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    extra = {"server_rss": sampler.stop(), "server_cpu": sampler.cpu_seconds(srv_before)} if sampler else {}
    if args.get("save"):
        if isinstance(out, pd.DataFrame):
            out.to_parquet(args["save"])
        else:
            out.write_parquet(args["save"])
    print(json.dumps({"seconds": secs, "cpu": cpu, "rows": len(ent), "out_rows": len(out), "cols": out.shape[1],
                      "rss_before": before, "rss_peak": _rss_peak()} | extra))


def run_child(env: dict | None = None, **args) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(args)], capture_output=True,
                          text=True, env=os.environ | (env or {}))
    if proc.returncode != 0:
        raise RuntimeError(f"child failed: {proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- setup ------------------------------------------------------------------------------------------

def setup_store(profile: str, symbols: int, bars: int) -> None:
    import polars as pl

    from mt5lab.feast_repo.store import apply
    from mt5lab.features.build import feature_rows
    from mt5lab.storage import open_store

    sys.path.insert(0, str(HERE))
    from synthetic import synthetic_bars

    store = open_store(profile)
    have = store.counts().get("features_d1", 0)
    if have != symbols * bars:
        t0 = time.perf_counter()
        chunk = 2000
        for i in range(0, symbols, chunk):  # bounded memory: 1M bars at a time
            b = synthetic_bars(min(chunk, symbols - i), bars, seed=i)
            b = b.with_columns(pl.format("S{}", pl.col("symbol").str.slice(3).cast(pl.Int64) + i)
                               .alias("symbol"))
            with store.lock():
                store.write_features("D1", feature_rows(b, "D1"))
            print(f"  {profile}: features for {i + len(b) // bars:,} symbols written", flush=True)
        print(f"  {profile}: {symbols * bars:,} feature rows in {time.perf_counter() - t0:.0f} s", flush=True)
    apply(profile, "D1")


PG_DATABASE = "mt5lab_bench_training"
"""The postgres profile's benchmark database: kept between runs (loading 5M rows is the slow part),
dropped and reloaded with ``--fresh-pg``."""


@contextmanager
def postgres_env(fresh: bool):
    """The postgres profile pointed at :data:`PG_DATABASE` (created if missing) and a throwaway
    Redis (``mt5lab.testing.sandbox.postgres_profile_env`` on a kept database); the environment is
    restored on exit."""
    import psycopg
    from psycopg import sql

    from mt5lab.testing.sandbox import PG_HOST, PG_PORT, PG_USER, postgres_profile_env

    kw = dict(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True, sslmode="disable")
    with psycopg.connect(**kw) as conn:
        db = sql.Identifier(PG_DATABASE)
        if fresh:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(db))
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (PG_DATABASE,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(db))
    with postgres_profile_env(database=PG_DATABASE):
        yield


def load_postgres(symbols: int, bars: int) -> None:
    """The local store's feature rows (same values, same created_timestamp) into PostgreSQL by
    binary COPY, 500,000 rows at a time (bounded memory), then VACUUM ANALYZE (what autovacuum
    would do to a freshly loaded table). A few minutes for 5M rows, once: the database is kept."""
    import polars as pl
    import pyarrow.parquet as pq

    from mt5lab.feast_repo.store import apply
    from mt5lab.storage import open_store

    store, local = open_store("postgres"), open_store("local")
    have = store.counts().get("features_d1", 0)
    if have != symbols * bars:
        t0 = time.perf_counter()
        if have:
            with store.connect() as conn:
                conn.execute("TRUNCATE features.d1")
        pf = pq.ParquetFile(local.features_path("D1"))
        done = 0
        with store.lock():
            for batch in pf.iter_batches(batch_size=500_000):
                store.write_features("D1", pl.from_arrow(batch))
                done += batch.num_rows
                print(f"  postgres: {done:,} feature rows copied", flush=True)
        with store.connect() as conn:
            conn.execute("VACUUM ANALYZE features.d1")
        print(f"  postgres: {done:,} feature rows in {time.perf_counter() - t0:.0f} s", flush=True)
    apply("postgres", "D1")


def make_entities(path: Path, rows: int, seed: int = 1) -> None:
    if path.exists():
        return
    import numpy as np
    import pandas as pd

    from mt5lab.storage import open_store

    k = open_store("local").read_features("D1", columns=["symbol", "event_timestamp"])
    syms = k["symbol"].unique().sort().to_list()
    lo, hi = k["event_timestamp"].min(), k["event_timestamp"].max()
    rng = np.random.default_rng(seed)
    names = np.array(syms + ["UNKNOWN1", "UNKNOWN2"])
    pick = rng.integers(0, len(syms), rows)
    pick[rng.random(rows) < 0.001] = len(syms) + rng.integers(0, 2)
    span_us = int((hi - lo).total_seconds() * 1e6) + 20 * 86_400_000_000
    t = pd.Timestamp(lo) - pd.Timedelta(days=10) + pd.to_timedelta(rng.integers(0, span_us, rows), unit="us")
    on_close = rng.random(rows) < 0.3  # 30% exactly on a bar close
    t = t.where(~on_close, t.floor("D"))
    pd.DataFrame({"symbol": names[pick], "event_timestamp": t.astype("datetime64[ns, UTC]"),
                  "row_id": np.arange(rows)}).to_parquet(path)


# --- equality -----------------------------------------------------------------------------------------

def check_equal(profile: str, entities: Path, feast_out: Path, rows: int) -> str:
    import pandas as pd

    from mt5lab.storage import open_store
    from mt5lab.training.assemble import training_set
    from mt5lab.training.pit_feast import compare, file_store_drops
    from mt5lab.training.refs import resolve

    ent = pd.read_parquet(entities).iloc[:rows].reset_index(drop=True)
    feast = pd.read_parquet(feast_out)
    ours = training_set(ent, profile=profile, progress=False)
    note = "all rows"
    if len(feast) != len(ent):  # the file store's documented drops, each one explained
        known = set(open_store(profile).read_features("D1", columns=["symbol", "event_timestamp"])["symbol"])
        bad = file_store_drops(ours, feast, known, resolve("mt5_v1").output_names())
        if bad:
            raise AssertionError(f"{profile}: Feast left out rows it should not have: {bad[:5]}")
        note = f"{len(ent) - len(feast)} rows Feast dropped (no row in window / duplicate); rest"
        ent = ent[ent["row_id"].isin(feast["row_id"])].reset_index(drop=True)
        ours = training_set(ent, profile=profile, progress=False)
    problems = compare(ours, feast)
    if problems:
        raise AssertionError(f"{profile}: mt5lab and Feast differ: {problems[:5]}")
    return f"equal ({note})"


# --- main ---------------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child")
    ap.add_argument("--profiles", default="local,postgres")
    ap.add_argument("--feast-profiles", default="local,postgres",
                    help="profiles whose 10k-row frame also runs through Feast (local: ~10 min)")
    ap.add_argument("--fresh-pg", action="store_true", help=f"drop and reload database {PG_DATABASE}")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--feast-rows", type=int, default=10_000)
    ap.add_argument("--symbols", type=int, default=10_000)
    ap.add_argument("--bars", type=int, default=500)
    ap.add_argument("--data", default=os.environ.get("MT5LAB_BENCH_DIR", "/tmp/mt5lab-bench-training"))
    a = ap.parse_args()
    if a.child:
        return child(json.loads(a.child))
    os.environ.setdefault("TQDM_DISABLE", "1")
    data = Path(a.data)
    data.mkdir(parents=True, exist_ok=True)
    os.environ["MT5LAB_DATA_DIR"] = str(data / "local")
    os.environ.pop("MT5LAB_PROFILE", None)
    print(f"setup: {a.symbols:,} symbols x {a.bars} D1 bars = {a.symbols * a.bars:,} bars", flush=True)
    setup_store("local", a.symbols, a.bars)
    ent = data / f"entities_{a.rows}.parquet"
    make_entities(ent, a.rows)
    results = []

    def row(profile, what, r, vs="", goal="", met=None, check=""):
        results.append((profile, what, r, vs, goal, met, check))
        print(f"  {profile} {what}: {r['seconds']:.3f} s", flush=True)

    feast_profiles = {p.strip() for p in a.feast_profiles.split(",")}
    n1 = f"{a.rows // 1000:,}k"
    for profile in [p.strip() for p in a.profiles.split(",") if p.strip()]:
        ctx = None
        if profile == "postgres":
            ctx = postgres_env(a.fresh_pg)
            ctx.__enter__()
            load_postgres(a.symbols, a.bars)
        try:
            if profile == "local":
                import shutil

                shutil.rmtree(data / "local" / "cache", ignore_errors=True)
                row(profile, f"{n1} rows, builds mirror", run_child(entities=str(ent), profile=profile))
                pdf = run_child(entities=str(ent), profile=profile)
                plf = run_child(entities=str(ent), profile=profile, to="polars", save=str(data / "out_local.parquet"))
                base = run_child(env={"MT5LAB_PIT_MIRROR": "0"}, entities=str(ent), profile=profile)
                row(profile, f"mt5lab {n1} -> pandas", pdf, _vs(base, pdf, "read_features"), "<= 3 s",
                    pdf["seconds"] <= 3)
                row(profile, f"mt5lab {n1} over 5M -> polars", plf, _vs(base, plf, "read_features"),
                    "<= 1.0 s", plf["seconds"] <= 1.0)
                row(profile, f"{n1}, read_features path", base)
            else:
                rss = "<= 4 GiB"
                for to in ("pandas", "polars"):
                    out = data / f"out_postgres_{to}.parquet"
                    r = run_child(entities=str(ent), profile=profile, to=to, server_rss=True, save=str(out))
                    row(profile, f"mt5lab {n1} over 5M -> {to}", r, "", f"<= 5 s, {rss}",
                        r["seconds"] <= 5 and max(r["rss_peak"], r.get("server_rss", 0)) <= 4 * GIB,
                        _same_as_local(out, data / "out_local.parquet"))
            if profile not in feast_profiles:
                continue
            ours = run_child(entities=str(ent), profile=profile, rows=a.feast_rows)
            fout = data / f"feast_{profile}_{a.feast_rows}.parquet"
            feast = run_child(entities=str(ent), profile=profile, rows=a.feast_rows, engine="feast",
                              save=str(fout))
            check = check_equal(profile, ent, fout, a.feast_rows)
            goal = 300 if profile == "local" else 100
            row(profile, f"mt5lab {a.feast_rows // 1000:,}k rows", ours, _vs(feast, ours, "Feast"), f">= {goal}x Feast",
                feast["seconds"] / ours["seconds"] >= goal, check)
            row(profile, f"Feast {a.feast_rows // 1000:,}k rows", feast)
        finally:
            if ctx is not None:
                ctx.__exit__(None, None, None)

    print()
    head = (f"{'profile':9} {'run':30} {'rows':>9} {'seconds':>8} {'cpu s':>7} {'peak RSS':>9} {'server RSS, cpu':>15} "
            f"{'vs baseline':>24} {'goal':>18} {'met':>4}  check")
    print(head)
    print("-" * len(head))
    for p, w, r, vs, goal, met, check in results:
        srv = f"{r['server_rss'] / GIB:.2f}Gi {r['server_cpu']:.1f}s" if "server_rss" in r else ""
        print(f"{p:9} {w:30} {r['rows']:>9,} {r['seconds']:>8.3f} {r.get('cpu', float('nan')):>7.2f} "
              f"{r['rss_peak'] / GIB:>7.2f}Gi {srv:>15} {vs:>24} {goal:>18} {'' if met is None else 'yes' if met else 'NO':>4}"
              f"  {check}")
    print("\ncpu s: the measured process's CPU time (all threads; 2 cores here), the load-independent part of\n"
          "a run. peak RSS: the measured process's own (VmHWM of its fresh interpreter); server: the peak sum of the RSS of the\n"
          "PostgreSQL backends serving it and their CPU seconds (sampled every 20 ms). vs baseline: baseline seconds /\n"
          "ours, same run.\n"
          "Machine load (1/5/15 min) at the end:", os.getloadavg())


def _same_as_local(path: Path, local: Path) -> str:
    """Whether the postgres profile's 1M-row frame equals the local profile's (same feature rows,
    same created_timestamp: the bench loads one from the other), values and nulls exactly."""
    import polars as pl

    if not local.exists():
        return ""
    a, b = pl.read_parquet(path), pl.read_parquet(local)
    a = a.with_columns(pl.col("event_timestamp").dt.cast_time_unit("ns"))
    b = b.with_columns(pl.col("event_timestamp").dt.cast_time_unit("ns"))
    a = a.with_columns(pl.col(c).cast(b.schema[c]) for c in a.columns if a.schema[c] != b.schema[c])
    return "equal to local" if a.equals(b) else "DIFFERS from local"


def _vs(base: dict, ours: dict, name: str) -> str:
    return f"{base['seconds'] / ours['seconds']:,.1f}x {name}"

if __name__ == "__main__":
    main()
