"""Materialize the latest 42 features of N symbols into Redis: mt5lab against Feast, same data.

Setup: a throwaway database on the machine's PostgreSQL and a throwaway Redis (password set), the
team profile pointed at both (:func:`mt5lab.testing.sandbox.postgres_profile_env`); N synthetic symbols x M
D1 bars ingested and built through mt5lab, the D1 project applied. Then, each on an empty Redis:

* mt5lab ``materialize`` (one primary-key probe per symbol for its latest row, one pipelined read
  of what Redis holds, one pipelined write of what differs, in Feast's own Redis layout);
* mt5lab ``materialize`` again with nothing new ("since last time": reads, compares, writes nothing);
* Feast ``FeatureStore.materialize`` over the data's whole time range, with the profile's
  ``pull_latest_features: true`` (Feast's own latest-row query per view);
* Feast ``materialize`` with Feast's default ``pull_latest_features: false`` (every row in the
  window is converted and written; Redis keeps the newest), unless ``--skip-window``.

After each full run every symbol is read back with Feast's ``get_online_features`` and checked
equal, feature by feature, to the offline latest row, and mt5lab run over Feast's output must
find nothing to rewrite (the same bytes). Goal: mt5lab >= 10x faster than Feast.

    .venv/bin/python benchmarks/bench_materialize.py [--symbols 1000] [--bars 300] [--skip-window]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import synthetic_bars

GOAL = 10.0


def _readback(symbols, timeframe="D1"):
    import polars as pl

    from mt5lab.online.feast_read import online_frame

    frames = [online_frame(symbols[i:i + 500], timeframe, "postgres") for i in range(0, len(symbols), 500)]
    return pl.concat([pl.from_pandas(f) for f in frames], how="vertical_relaxed").sort("symbol")


def _check(offline, online) -> None:
    import polars as pl

    from mt5lab.catalog import FEATURES

    assert offline["symbol"].to_list() == online["symbol"].to_list()
    for f in FEATURES:
        a = offline[f.name]
        b = online[f.name].cast(a.dtype, strict=False).fill_nan(None) if a.dtype == pl.Float64 else \
            online[f.name].cast(a.dtype, strict=False)
        same = (a == b).fill_null(False) | (a.is_null() & b.is_null())
        assert same.all(), f"{f.name}: {int((~same).sum())} symbols differ from the offline latest row"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--symbols", type=int, default=1000)
    ap.add_argument("--bars", type=int, default=300)
    ap.add_argument("--skip-window", action="store_true", help="skip Feast's default whole-window run")
    ap.add_argument("--repeat", type=int, default=3, help="runs per timed method (the median is shown)")
    a = ap.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")

    import redis

    from mt5lab.feast_repo import store as store_mod
    from mt5lab.feast_repo.store import apply, feature_store
    from mt5lab.features.build import build
    from mt5lab.online.materialize import materialize
    from mt5lab.storage import open_store
    from mt5lab.testing.sandbox import postgres_profile_env

    rows = []
    with postgres_profile_env() as env:
        os.environ["MT5LAB_DATA_DIR"] = str(Path("/tmp") / f"mt5lab-bench-mat-{os.getpid()}")
        store_mod._STORES.clear()
        st = open_store("postgres")
        st.write_bars(synthetic_bars(a.symbols, a.bars))
        build(st, progress=False)
        apply("postgres", "D1")
        offline = st.latest_features("D1").sort("symbol")
        symbols = offline["symbol"].to_list()
        r = redis.Redis(host=env["MT5LAB_REDIS_HOST"], port=int(env["MT5LAB_REDIS_PORT"]),
                        password=env["MT5LAB_REDIS_PASSWORD"])
        start = st.read_features("D1", columns=["event_timestamp"])["event_timestamp"].min() - timedelta(days=1)
        end = offline["event_timestamp"].max() + timedelta(days=1)

        times = []
        for _ in range(a.repeat):  # median of --repeat runs, each on an empty Redis
            r.flushdb()
            t = time.perf_counter()
            res = materialize(st, "postgres", "D1", progress=False)
            times.append(time.perf_counter() - t)
            assert res.written == len(symbols)
        rows.append((f"mt5lab materialize (empty Redis; median of {a.repeat})", statistics.median(times),
                     res.written))
        _check(offline, _readback(symbols))
        mt5_values = _readback(symbols)

        t = time.perf_counter()
        res = materialize(st, "postgres", "D1", progress=False)
        rows.append(("mt5lab materialize again (nothing new)", time.perf_counter() - t, res.written))

        fs = feature_store("postgres", "D1")
        assert fs.config.materialization_config.pull_latest_features is True
        times = []
        for _ in range(a.repeat):
            r.flushdb()
            t = time.perf_counter()
            fs.materialize(start_date=start, end_date=end)
            times.append(time.perf_counter() - t)
        rows.append((f"Feast materialize (pull_latest_features: true; median of {a.repeat})",
                     statistics.median(times), len(symbols)))
        feast_values = _readback(symbols)
        _check(offline, feast_values)
        assert feast_values.equals(mt5_values), "Feast and mt5lab wrote different values"
        # Byte for byte: over what Feast wrote, mt5lab finds nothing to rewrite.
        assert materialize(st, "postgres", "D1", progress=False).written == 0

        if not a.skip_window:
            fs.config.materialization_config.pull_latest_features = False
            r.flushdb()
            t = time.perf_counter()
            fs.materialize(start_date=start, end_date=end)
            rows.append(("Feast materialize (default: whole window)", time.perf_counter() - t, len(symbols)))
            _check(offline, _readback(symbols))
        store_mod._STORES.clear()

    mt5 = rows[0][1]
    print(f"\nMaterialize the latest 42 features of {a.symbols:,} symbols into Redis "
          f"({a.symbols * a.bars:,} offline feature rows; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})\n")
    print(f"{'method':<62} {'seconds':>8} {'symbols written':>16} {'mt5lab faster':>14}")
    for name, secs, n in rows:
        print(f"{name:<62} {secs:>8.2f} {n:>16,} {secs / mt5:>13.1f}x")
    feast = min(s for name, s, _ in rows if name.startswith("Feast"))
    print(f"\nvalues read back through Feast: identical to the offline latest rows for all 42 features "
          f"(mt5lab and Feast alike)\ngoal: mt5lab >= {GOAL:.0f}x faster than Feast's best: "
          f"{'met' if feast / mt5 >= GOAL else 'NOT met'} ({feast / mt5:.1f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
