"""The live feed's latency: ``mt5lab.follow`` replaying N symbols x H1 as fast as possible, against a loop
that runs ``mt5lab update`` as a subprocess per bar (what a user would script without ``follow``).

Postgres profile on throwaway servers (a fresh database and a fresh ``redis-server``; each side gets
its own). Both start from the same stored history (``--warm`` bars per symbol) and then add the same
bars. Latency per symbol-bar: from the bar's availability (the replay releasing its close; for the
subprocess loop, the moment its CSV is about to be written) to its online write (``follow``: the end of
the ``update`` that wrote it; the loop: the subprocess's exit). bars/s counts symbol-bars; ms/bar is its inverse (wall time per symbol-bar). ``follow`` writes all
symbols of a bar close in one ``update``, so every symbol-bar of a cycle has that cycle's latency.
Goal (the issue's, for 100 symbols): p99 < 50 ms per symbol-bar and >= 10x the subprocess loop.

    python benchmarks/bench_follow.py [--symbols 20] [--bars 50] [--steps 5] [--full]   # --full: 100 symbols
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import synthetic_bars


def _prepare(bars: pl.DataFrame, warm: int) -> None:
    from mt5lab.feast_repo.store import apply
    from mt5lab.online.update import update

    apply(None, "H1")
    first = bars.filter(pl.col("time") < bars["time"].unique().sort()[warm])
    update(first, timeframe="H1", calendar="24x7")


def _follow(bars: pl.DataFrame, path: Path, warm: int) -> tuple[float, np.ndarray, int]:
    import mt5lab

    _prepare(bars, warm)
    t = time.perf_counter()
    res = mt5lab.follow(source=f"replay:{path}", timeframe="H1", calendar="24x7", handle_signals=False)
    wall = time.perf_counter() - t
    assert not res.failing, res.failing
    lat = np.array([b.latency for b in res.written]) * 1e3
    return wall, lat, res.bars


def _subprocess_loop(bars: pl.DataFrame, warm: int, steps: int, work: Path) -> tuple[float, np.ndarray, int]:
    _prepare(bars, warm)
    times = bars["time"].unique().sort()[warm:warm + steps]
    lat, n, wall = [], 0, 0.0
    for i, t in enumerate(times):
        step = bars.filter(pl.col("time") == t).drop("timeframe")
        f = work / f"bar_{i}.csv"
        t0 = time.perf_counter()
        step.with_columns(pl.col("time").dt.strftime("%Y-%m-%dT%H:%M:%SZ")).write_csv(f)
        run = subprocess.run([sys.executable, "-m", "mt5lab.cli", "update", str(f), "--timeframe", "H1",
                              "--calendar", "24x7"], capture_output=True, text=True, env=dict(os.environ))
        dt = time.perf_counter() - t0
        assert run.returncode == 0, run.stderr
        wall += dt
        lat += [dt * 1e3] * step.height
        n += step.height
    return wall, np.array(lat), n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=20)
    ap.add_argument("--bars", type=int, default=50, help="H1 bars per symbol replayed")
    ap.add_argument("--warm", type=int, default=30, help="bars per symbol stored before the replay (> 452, "
                    "the catalog's MAX_WARMUP, for a desk's long history: bounded incremental windows)")
    ap.add_argument("--steps", type=int, default=5, help="bars the subprocess loop runs (it is slow)")
    ap.add_argument("--full", action="store_true", help="100 symbols (the issue's case)")
    args = ap.parse_args()
    if args.full:
        args.symbols = 100

    from mt5lab.feast_repo import store as fstore
    from mt5lab.online import reader as oreader
    from mt5lab.testing.sandbox import postgres_profile_env

    os.environ.setdefault("TQDM_DISABLE", "1")
    work = Path(tempfile.mkdtemp(prefix="bench_follow_"))
    bars = synthetic_bars(args.symbols, args.warm + args.bars, timeframe="H1")
    path = work / "replay.parquet"
    bars.drop("timeframe").write_parquet(path)
    print(f"machine: {os.cpu_count()} cores; {args.symbols} symbols x {args.bars} H1 bars replayed after "
          f"{args.warm} stored, postgres profile (throwaway PostgreSQL database + redis-server)")

    results = {}
    for name in ("follow", "subprocess"):
        os.environ["MT5LAB_DATA_DIR"] = str(work / name)
        fstore._STORES.clear()
        oreader.clear_cache()
        with postgres_profile_env():
            if name == "follow":
                results[name] = _follow(bars, path, args.warm)
            else:
                results[name] = _subprocess_loop(bars, args.warm, args.steps, work)
        fstore._STORES.clear()
        oreader.clear_cache()

    print(f"{'loop':<34}{'symbol-bars':>12}{'wall s':>9}{'bars/s':>10}{'ms/bar':>9}{'p50 ms':>10}{'p99 ms':>10}")
    rate = {}
    for name, label in (("follow", "mt5lab follow (replay, max speed)"),
                        ("subprocess", "mt5lab update subprocess per bar")):
        wall, lat, n = results[name]
        rate[name] = n / wall
        print(f"{label:<34}{n:>12}{wall:9.2f}{rate[name]:10.1f}{1e3 / rate[name]:9.2f}{np.percentile(lat, 50):10.1f}"
              f"{np.percentile(lat, 99):10.1f}")
    p99 = np.percentile(results["follow"][1], 99)
    ratio = rate["follow"] / rate["subprocess"]
    print(f"ratio follow/subprocess: {ratio:.1f}x bars/s, "
          f"{np.percentile(results['subprocess'][1], 50) / np.percentile(results['follow'][1], 50):.1f}x p50 "
          f"latency; goals: p99 < 50 ms {'met' if p99 < 50 else 'NOT met'} ({p99:.1f} ms), "
          f">= 10x {'met' if ratio >= 10 else 'NOT met'}")
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
