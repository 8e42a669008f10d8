"""Soak: ``mt5lab serve`` under steady load while ``update`` writes a new bar every second.

Team profile on loopback: a throwaway Redis (password) and a fresh PostgreSQL database. One symbol
(``SOAK``, M1) is seeded with enough closed history for every warm-up; then, for ``--seconds``:

- an updater process calls :func:`mt5lab.online.update.update` once a second with the next closed M1 bar
  (the bars were historical: ``time + 1 min <= now``, as update requires), writing PostgreSQL and
  Redis under the store lock;
- ``--clients`` keep-alive connections send ``POST /get-online-features`` (``mt5_v1``, ``SOAK``) at
  a fixed total ``--rate`` (open loop: latency from the scheduled send time);
- the server's RSS (master + workers) is sampled every 5 s.

Reported: requests served, errors (non-200, timeouts, resets; goal 0), p99 of the first minute
against the last minute, server RSS growth from the end of the first minute to the end (goal: flat),
updates done and failed, and how far the served bar advanced (reads see the writes). A JSON line
``SOAK {...}`` carries the same numbers; ``--check`` exits 1 if any request or update failed.

    python benchmarks/bench_soak.py [--seconds 300] [--rate 100] [--clients 20] [--workers 2] [--check]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_server import _request

HOST = "127.0.0.1"
SYMBOL, TF = "SOAK", "M1"


def _bars(start: datetime, n: int, seed: int = 7):
    import polars as pl

    rng = np.random.default_rng(seed)
    close = 1.1 * np.exp(np.cumsum(rng.normal(0, 2e-4, n)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    return pl.DataFrame({
        "symbol": SYMBOL, "timeframe": TF,
        "time": [start + timedelta(minutes=i) for i in range(n)],
        "open": open_, "high": np.maximum(open_, close) * 1.0002, "low": np.minimum(open_, close) * 0.9998,
        "close": close, "tick_volume": rng.integers(1, 500, n), "spread": np.full(n, 2),
        "real_volume": np.zeros(n, dtype=np.int64),
    }).with_columns(pl.col("time").dt.cast_time_unit("us").dt.replace_time_zone("UTC"))


def updater(start_iso: str, seed_bars: int, seconds: float) -> None:
    """Child process: one ``update`` per second with the next bar; prints one JSON line at the end."""
    from mt5lab.online.update import update

    start = datetime.fromisoformat(start_iso)
    total = seed_bars + int(seconds) + 5
    bars = _bars(start, total)
    done, failed, slow, errors = 0, 0, 0.0, []
    t_end = time.monotonic() + seconds
    i = seed_bars
    while time.monotonic() < t_end and i < total:
        tick = time.monotonic()
        try:
            update(bars.slice(i, 1), timeframe=TF, calendar="24x7", source="soak")
            done += 1
        except Exception as exc:  # counted and reported, the soak goes on
            failed += 1
            errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
        i += 1
        took = time.monotonic() - tick
        slow = max(slow, took)
        time.sleep(max(0.0, 1.0 - took))
    last = bars["time"][i - 1] + timedelta(minutes=1)
    print("UPDATER " + json.dumps({"done": done, "failed": failed, "max_s": round(slow, 3),
                                   "errors": errors[:5], "last_event": last.isoformat()}), flush=True)


def _setup(seed_bars: int, seconds: float) -> datetime:
    from mt5lab.feast_repo.store import apply
    from mt5lab.online.update import update

    apply(None, TF)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = now - timedelta(minutes=seed_bars + int(seconds) + 10)  # every bar closed before it is sent
    update(_bars(start, seed_bars), timeframe=TF, calendar="24x7", source="seed")
    return start


def _rss(proc) -> int:
    import psutil

    root = psutil.Process(proc.pid)
    total = 0
    for p in [root, *root.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:  # pragma: no cover
            pass
    return total


async def _client(port: int, req: bytes, start: float, stop: float, interval: float, out: dict) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    loop = asyncio.get_running_loop()
    due = start + random.random() * interval
    n = 0
    try:
        while True:
            now = loop.time()
            if due > now:
                await asyncio.sleep(due - now)
            if due >= stop:
                return
            sent = loop.time()
            ok = False
            try:
                status, body = await asyncio.wait_for(_request(reader, writer, req), 5.0)
                ok = status == 200
                n += 1
                if ok and n % 20 == 0:  # which bar is served (reads see the updates)
                    res = json.loads(body)["results"]
                    ts = [t for r in res[1:] for t in r.get("event_timestamps", [])]
                    if ts:
                        out["served"].append(max(ts))
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError, KeyError) as exc:
                out["kinds"][type(exc).__name__] = out["kinds"].get(type(exc).__name__, 0) + 1
                writer.close()
                reader, writer = await asyncio.open_connection(HOST, port)
            done = loop.time()
            out["t"].append(sent - start)
            out["lat"].append(done - due)
            out["errors"] += not ok
            due += interval
    finally:
        writer.close()


async def _load(port: int, clients: int, rate: float, seconds: float, proc, out: dict) -> None:
    body = json.dumps({"feature_service": "mt5_v1", "entities": {"symbol": [SYMBOL]}}).encode()
    req = (f"POST /get-online-features HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
           f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.2

    async def sample_rss():
        while loop.time() < start + seconds:
            out["rss"].append((loop.time() - start, _rss(proc)))
            await asyncio.sleep(5.0)
        out["rss"].append((loop.time() - start, _rss(proc)))

    interval = clients / rate
    await asyncio.gather(sample_rss(), *(_client(port, req, start, start + seconds, interval, out)
                                         for _ in range(clients)))


def _window_p99(t: np.ndarray, lat: np.ndarray, lo: float, hi: float) -> float:
    sel = lat[(t >= lo) & (t < hi)]
    return float(np.percentile(sel, 99) * 1e3) if sel.size else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=300.0, help="soak duration (60..3600)")
    ap.add_argument("--rate", type=float, default=100.0, help="total requests/s (open loop)")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--check", action="store_true", help="exit 1 if any request or update failed")
    ap.add_argument("--updater", nargs=3, metavar=("START", "SEED", "SECONDS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.updater:
        updater(args.updater[0], int(args.updater[1]), float(args.updater[2]))
        return 0
    if not 60 <= args.seconds <= 3600:
        ap.error("--seconds must be 60..3600 (a bounded soak)")

    from mt5lab.catalog import MAX_WARMUP
    from mt5lab.testing.sandbox import postgres_profile_env, serve_process

    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ["MT5LAB_DATA_DIR"] = tempfile.mkdtemp(prefix="bench_soak_")
    seed = 2 * MAX_WARMUP + 10
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start (shared)")
    print(f"soak {args.seconds:g} s: mt5lab serve ({args.workers} workers, Redis, {TF}) <- {args.clients} "
          f"clients at {args.rate:g} RPS; update writes 1 bar/s")
    out = {"t": [], "lat": [], "errors": 0, "kinds": {}, "served": [], "rss": []}
    with postgres_profile_env():
        start = _setup(seed, args.seconds)
        with serve_process("--timeframe", TF, "--workers", str(args.workers)) as (port, server):
            upd = subprocess.Popen([sys.executable, __file__, "--updater", start.isoformat(), str(seed),
                                    str(args.seconds)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, env=dict(os.environ))
            asyncio.run(_load(port, args.clients, args.rate, args.seconds, server, out))
            u_out, u_err = upd.communicate(timeout=120)
            alive = server.poll() is None
    lines = [ln for ln in u_out.splitlines() if ln.startswith("UPDATER ")]
    upd_res = json.loads(lines[-1][8:]) if lines else {"done": 0, "failed": -1, "errors": [u_err[-500:]]}
    t, lat = np.array(out["t"]), np.array(out["lat"])
    minute = min(60.0, args.seconds / 2)
    p99_first = _window_p99(t, lat, 0, minute)
    p99_last = _window_p99(t, lat, args.seconds - minute, args.seconds)
    rss = out["rss"]
    rss_ref = next((r for s, r in rss if s >= minute), rss[0][1])  # after the first minute's warm-up
    growth = (rss[-1][1] - rss_ref) / 2**20
    served = sorted(out["served"])
    summary = {
        "seconds": args.seconds, "requests": int(lat.size), "rps": round(lat.size / args.seconds, 1),
        "errors": int(out["errors"]), "error_kinds": out["kinds"], "server_alive": alive,
        "p99_first_min_ms": round(p99_first, 2), "p99_last_min_ms": round(p99_last, 2),
        "p99_drift": round(p99_last / p99_first, 2) if p99_first else None,
        "rss_start_mib": round(rss[0][1] / 2**20, 1), "rss_after_1min_mib": round(rss_ref / 2**20, 1),
        "rss_end_mib": round(rss[-1][1] / 2**20, 1), "rss_growth_mib": round(growth, 1),
        "updates": upd_res.get("done", 0), "update_failures": upd_res.get("failed", -1),
        "update_max_s": upd_res.get("max_s"), "update_errors": upd_res.get("errors", []),
        "served_first": served[0] if served else None, "served_last": served[-1] if served else None,
        "last_written": upd_res.get("last_event"),
    }
    print(f"requests {summary['requests']} ({summary['rps']} RPS), errors {summary['errors']} {out['kinds'] or ''}")
    print(f"p99 first minute {p99_first:.2f} ms, last minute {p99_last:.2f} ms (x{summary['p99_drift']})")
    print(f"server RSS {summary['rss_start_mib']} MiB at start, {summary['rss_after_1min_mib']} after the first "
          f"minute, {summary['rss_end_mib']} at the end: growth {summary['rss_growth_mib']} MiB")
    print(f"updates {summary['updates']} done, {summary['update_failures']} failed (slowest "
          f"{summary['update_max_s']} s); served bar advanced {summary['served_first']} -> {summary['served_last']} "
          f"(last written {summary['last_written']})")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    print("SOAK " + json.dumps(summary))
    bad = summary["errors"] or summary["update_failures"] or not alive
    return 1 if args.check and bad else 0


if __name__ == "__main__":
    sys.exit(main())
