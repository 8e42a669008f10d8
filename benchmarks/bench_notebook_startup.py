"""What every notebook kernel and every ``mt5lab apply`` pays before doing anything: the import of
mt5lab and a no-op apply, each against its baseline, side by side in one run, as ratios.

- **import**: ``python -c "import mt5lab"`` (lazy top-level API) against a fresh interpreter that
  imports what ``mt5lab/__init__.py`` imported eagerly before (the API's modules: Feast wiring,
  TA-Lib computation, follow, freshness, reader, update, training).
- **no-op apply**: ``mt5lab.feast_repo.store.apply`` in a fresh process on a registry that already
  equals the catalog (a stamp check, no Feast import), against the same process running Feast's own
  ``FeatureStore.apply`` of the same objects (what every apply did before), on the same store.

Each side runs ``--repeat`` times in fresh processes; the best time counts (import cost is what
the OS cache and the machine's load allow at best). Local profile, GOOG D1 sample, a temporary
data directory. Goal (issue 13): both at least 5x faster than their baseline.

    python benchmarks/bench_notebook_startup.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EAGER = ("mt5lab.feast_repo.store", "mt5lab.features.compute", "mt5lab.online.follow", "mt5lab.online.freshness",
         "mt5lab.online.reader", "mt5lab.online.update", "mt5lab.training.assemble", "mt5lab.training.manifest")

FEAST_APPLY = """
from mt5lab.feast_repo.definitions import definitions
from mt5lab.feast_repo.store import feature_store
from mt5lab.storage import open_store
store = open_store()
fs = feature_store(None, "D1")
objects = definitions(store.feast_source("D1"), "D1")
with store.lock():
    fs.apply(objects, objects_to_delete=[], partial=False)
"""


def _best(code: str, env: dict, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, timeout=900)
        best = min(best, time.perf_counter() - t0)
    return best


def _prepare(env: dict) -> None:
    code = ("from mt5lab.bars.ingest import write\nfrom mt5lab.bars.samples import load_sample\n"
            "from mt5lab.features.build import build\nfrom mt5lab.storage import open_store\n"
            "from mt5lab.feast_repo.store import apply\n"
            "s = open_store(); write(s, load_sample('GOOG'), []); build(s, ['D1'], progress=False)\n"
            "apply(None, 'D1'); apply(None, 'D1')\n")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, timeout=900)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, MT5LAB_DATA_DIR=str(Path(tmp) / "data"), TQDM_DISABLE="1")
        env.pop("MT5LAB_PROFILE", None)
        _prepare(env)
        rows = [
            ("import mt5lab", _best("import mt5lab", env, args.repeat),
             _best("import " + ", ".join(EAGER), env, args.repeat), "eager imports of the old __init__"),
            ("no-op apply D1", _best("from mt5lab.feast_repo.store import apply; apply(None, 'D1')", env, args.repeat),
             _best(FEAST_APPLY, env, args.repeat), "Feast's apply of the same objects"),
        ]
    print(f"{'measure':<16} {'mt5lab (s)':>11} {'baseline (s)':>13} {'speed-up':>9}  baseline")
    for name, ours, base, what in rows:
        print(f"{name:<16} {ours:>11.2f} {base:>13.2f} {base / ours:>8.1f}x  {what}")
    print(f"(best of {args.repeat} fresh processes each; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
