"""Online reads on Redis: mt5lab's OnlineReader against Feast's get_online_features, same run.

Goals (2-core machine): 1 symbol x 42 features p99 <= 1 ms; 100 symbols x 42 features p99 <= 10 ms.
Both readers hit the same throwaway Redis (a fresh ``redis-server`` with a password) through the
team profile (SQL registry in a throwaway PostgreSQL database). They are measured in alternating
blocks so that load from other processes on the machine hits both alike; the values are compared
before anything is timed. Prints p50/p99 (wall) and CPU per call, and the ratio Feast/mt5lab.

    python benchmarks/bench_online.py [--calls 3000] [--symbols 100]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import synthetic_bars

GOALS_MS = {1: 1.0, 100: 10.0}


def _setup(n_symbols: int) -> list[str]:
    from mt5lab.feast_repo.store import apply
    from mt5lab.online.update import update

    apply(None, "D1")
    from datetime import UTC, datetime, timedelta

    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    bars = synthetic_bars(n_symbols, 260, timeframe="D1", start=today - timedelta(days=261))
    update(bars, calendar="24x7")
    return sorted(bars["symbol"].unique().to_list())


def _interleaved(fns: dict, calls: int, block: int = 100) -> dict:
    """Per reader: latencies (ms) and CPU ms per call, measured in alternating blocks."""
    lat = {k: [] for k in fns}
    cpu = dict.fromkeys(fns, 0.0)
    for _ in range(max(1, calls // block)):
        for k, fn in fns.items():
            c = time.process_time()
            for _ in range(block):
                t = time.perf_counter()
                fn()
                lat[k].append(time.perf_counter() - t)
            cpu[k] += time.process_time() - c
    return {k: (np.array(v) * 1e3, cpu[k] * 1e3 / len(v)) for k, v in lat.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=3000, help="calls per reader for 1 symbol (x0.1 for 100)")
    ap.add_argument("--symbols", type=int, default=100)
    args = ap.parse_args()

    import tempfile

    from mt5lab.feast_repo.store import feature_store
    from mt5lab.online.reader import OnlineReader
    from mt5lab.testing.sandbox import postgres_profile_env

    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ["MT5LAB_DATA_DIR"] = tempfile.mkdtemp(prefix="bench_online_")
    with postgres_profile_env():
        symbols = _setup(args.symbols)
        fs = feature_store(None, "D1")
        service = fs.get_feature_service("mt5_v1")
        reader = OnlineReader(None, "D1")
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} (shared with other "
              f"runs: compare the ratio, not absolute numbers)")
        print(f"{'case':<24}{'reader':<28}{'p50 ms':>9}{'p99 ms':>9}{'cpu ms':>9}")
        ok = True
        for n in (1, args.symbols):
            syms = symbols[:n]
            rows = [{"symbol": s} for s in syms]

            def feast(rows=rows):
                return fs.get_online_features(features=service, entity_rows=rows).to_dict()

            def mt5(syms=syms):
                return reader.read(syms)

            ref, got = feast(), mt5()
            for name in got.values:
                assert got.values[name] == ref[name], f"values differ: {name}"
            assert set(sum(got.status.values(), [])) == {"fresh"}
            calls = args.calls if n == 1 else max(100, args.calls // 10)
            res = _interleaved({"feast": feast, "mt5lab": mt5}, calls)
            case = f"{n} symbol{'s' if n > 1 else ''} x {len(got.values)}"
            for name, label in (("feast", "Feast get_online_features"), ("mt5lab", "mt5lab OnlineReader.read")):
                lat, cpu = res[name]
                print(f"{case:<24}{label:<28}{np.percentile(lat, 50):9.3f}{np.percentile(lat, 99):9.3f}"
                      f"{cpu:9.3f}")
            (fl, fc), (ml, mc) = res["feast"], res["mt5lab"]
            p99 = np.percentile(ml, 99)
            goal = GOALS_MS.get(n)
            verdict = "" if goal is None else f"; goal p99 <= {goal:g} ms: {'met' if p99 <= goal else 'NOT met'}"
            ok &= goal is None or p99 <= goal
            print(f"{case:<24}{'ratio Feast/mt5lab':<28}{np.percentile(fl, 50) / np.percentile(ml, 50):8.1f}x"
                  f"{np.percentile(fl, 99) / p99:8.1f}x{fc / mc:8.1f}x{verdict}")
        print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return 0  # the verdict is printed; `make bench` runs every benchmark


if __name__ == "__main__":
    sys.exit(main())
