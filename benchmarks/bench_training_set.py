"""Training sets: mt5lab vs Feast's get_historical_features, side by side, one run.

Setup (cached in --data, rebuilt when missing): 10,000 synthetic symbols x 500 D1 bars = 5,000,000
bars; their 42 features are written straight into the profile's offline store (no ingest), and the
Feast project is applied. Entity frames: 1,000,000 random (symbol, time) rows over the whole range
(times on and between bar closes, before the first bar, after ttl expiry, unknown symbols) and its
first 10,000 rows.

Measured, each in a fresh subprocess so that peak RSS is the run's own:
* mt5lab, 1,000,000 rows x 42 features, local profile (goal <= 3 s, peak RSS <= 4 GiB): the first
  call after a write (it builds the memory-mapped mirror, mt5lab.training.pit_mirror), then warm calls to
  pandas and to polars, and the plain read_features path (MT5LAB_PIT_MIRROR=0);
* mt5lab and Feast on the same 10,000-row frame, per profile; the outputs are checked equal
  (mt5lab.training.pit_feast) before the ratio is printed (goal >= 300x local, >= 100x postgres).

    .venv/bin/python benchmarks/bench_training_set.py [--profiles local,postgres] [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
GIB = 2**30


def _rss_peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# --- child: one measured run ----------------------------------------------------------------------

def child(args: dict) -> None:
    import pandas as pd

    import mt5lab  # noqa: F401 - imports are not part of the measurement
    from mt5lab.training.assemble import training_set

    ent = pd.read_parquet(args["entities"])
    if args.get("rows"):
        ent = ent.iloc[: args["rows"]].reset_index(drop=True)
    before = _rss_peak()
    t0, c0 = time.perf_counter(), time.process_time()
    if args.get("engine") == "feast":
        from mt5lab.training.pit_feast import feast_historical

        out = feast_historical(ent, "mt5_v1", profile=args["profile"])
    else:
        out = training_set(ent, "mt5_v1", profile=args["profile"], to=args.get("to", "pandas"),
                           progress=False)
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    if args.get("save"):
        (out if isinstance(out, pd.DataFrame) else out.to_pandas()).to_parquet(args["save"])
    print(json.dumps({"seconds": secs, "cpu": cpu, "rows": len(ent), "out_rows": len(out), "cols": out.shape[1],
                      "rss_before": before, "rss_peak": _rss_peak()}))


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

    def row(profile, what, r, ratio="", check=""):
        results.append((profile, what, r["rows"], r["seconds"], r.get("cpu", float("nan")),
                        r["rows"] / r["seconds"], r["rss_peak"], r["rss_peak"] - r["rss_before"], ratio, check))
        print(f"  {profile} {what}: {r['seconds']:.3f} s", flush=True)

    for profile in [p.strip() for p in a.profiles.split(",") if p.strip()]:
        ctx = None
        if profile == "postgres":
            from mt5lab.testing.sandbox import postgres_profile_env

            ctx = postgres_profile_env()
            ctx.__enter__()
            setup_store("postgres", a.symbols, a.bars)
        try:
            if profile == "local":
                import shutil

                shutil.rmtree(data / "local" / "cache", ignore_errors=True)
                row(profile, f"{a.rows // 1000:,}k rows, builds mirror", run_child(entities=str(ent), profile=profile))
                row(profile, f"mt5lab {a.rows:,} rows -> pandas", run_child(entities=str(ent), profile=profile))
                row(profile, f"mt5lab {a.rows:,} rows -> polars",
                    run_child(entities=str(ent), profile=profile, to="polars"))
                row(profile, f"{a.rows // 1000:,}k, read_features path",
                    run_child(env={"MT5LAB_PIT_MIRROR": "0"}, entities=str(ent), profile=profile))
            ours = run_child(entities=str(ent), profile=profile, rows=a.feast_rows)
            fout = data / f"feast_{profile}_{a.feast_rows}.parquet"
            feast = run_child(entities=str(ent), profile=profile, rows=a.feast_rows, engine="feast",
                              save=str(fout))
            check = check_equal(profile, ent, fout, a.feast_rows)
            ratio = feast["seconds"] / ours["seconds"]
            row(profile, f"mt5lab {a.feast_rows:,} rows", ours, f"{ratio:,.0f}x", check)
            row(profile, f"Feast {a.feast_rows:,} rows", feast)
        finally:
            if ctx is not None:
                ctx.__exit__(None, None, None)

    print()
    head = f"{'profile':9} {'run':32} {'rows':>10} {'seconds':>9} {'cpu s':>8} {'rows/s':>12} " \
           f"{'peak RSS':>10} {'join RSS':>10} {'vs Feast':>9}  check"
    print(head)
    print("-" * len(head))
    for p, w, n, s, cpu, rps, peak, inc, ratio, check in results:
        print(f"{p:9} {w:32} {n:>10,} {s:>9.3f} {cpu:>8.2f} {rps:>12,.0f} {peak / GIB:>8.2f}Gi "
              f"{inc / GIB:>8.2f}Gi {ratio:>9}  {check}")
    print("\ngoals: 1M rows x 42 features local <= 3 s and peak RSS <= 4 GiB; vs Feast >= 300x local, "
          ">= 100x postgres. cpu s: process CPU time of the run (all threads; 2 cores here), the\n"
          "load-independent part of it. Machine load (1/5/15 min) at the end:", os.getloadavg())


if __name__ == "__main__":
    main()
