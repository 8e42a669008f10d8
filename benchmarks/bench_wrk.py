"""Requests/s of ``mt5lab serve``: mt5lab's handler against Feast's own, measured with ``wrk`` (closed
loop) and ``h2load`` (open loop, at the goal's rate).

Both servers run on the same store, one after the other, on a free loopback port; ``wrk`` (Debian's
``apt-get install wrk``) sends ``POST /get-online-features`` (1 symbol x the 42 features of
``mt5_v1``, then a basket of 100 symbols x 42, ``Content-Type: application/json``) closed loop for a
bounded time. Goals (issue 16): 1 x 42 at >= 1,000 requests/s with p99 <= 10 ms; 100 x 42 at >= 100
requests/s with p99 <= 20 ms; no non-200 answer. ``wrk`` is closed loop (each connection waits for
its answer), so its p99 is at the throughput it reached, not at a fixed offered rate.

The goals are judged open loop, at their rate: ``h2load`` (Debian's ``apt-get install
nghttp2-client``, a C load generator like ``wrk``) with ``--rps`` sends a connection's requests on a
fixed schedule; one process per connection, started evenly apart (1 x 42: 1,000 requests/s over 20
connections; 100 x 42: 100 requests/s over 10), one request in flight per connection. Each logs every
request's send time and its time to the end of its answer (``--log-file``). Latency is counted from
each request's *scheduled* send (the connection's first send plus k periods), so a request held
back behind a slow answer on its connection counts its wait, as a wrk2-style open loop does (no
coordinated omission). The achieved rate is printed beside the offered one, and a goal is met only if
it reached 98% of it.

    python benchmarks/bench_wrk.py [--duration 10] [--threads 2] [--connections 16] [--workers 2]
                                   [--profile postgres|local] [--no-open-loop]

The default profile is the team one (Redis online store with a password, SQL registry in a fresh
PostgreSQL database, both throwaway) as in ``bench_server.py``; ``local`` is SQLite. ``wrk``'s
output is printed verbatim, then the ratio and the machine load (``uptime``): ``wrk`` shares the
cores with the server, so the numbers are a lower bound of what a separate client would see.
Every answer must be a 200 (``wrk`` reports any other as "Non-2xx or 3xx responses").
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import synthetic_bars

SYMBOLS = [f"SYM{i:04d}" for i in range(100)]
GOALS = {1: (1000.0, 10.0), 100: (100.0, 20.0)}  # basket -> (requests/s, p99 ms)
OPEN_CLIENTS = {1: 20, 100: 10}  # h2load connections per basket size (the rate is split among them)
LUA = """wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
"""


def _setup() -> None:
    from mt5lab.feast_repo.store import apply
    from mt5lab.online.update import update

    apply(None, "D1")
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    update(synthetic_bars(len(SYMBOLS), 260, timeframe="D1", start=today - timedelta(days=261)),
           calendar="24x7")


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _p99_ms(out: str) -> float:
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]


def _check(port: int, body: str) -> None:
    """One request first: a 200 with the symbol and the 42 features, or the run is meaningless."""
    import urllib.request

    req = urllib.request.Request(f"http://127.0.0.1:{port}/get-online-features", data=body.encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        names = json.loads(r.read())["metadata"]["feature_names"]
    if len(names) != 43:
        raise RuntimeError(f"unexpected answer: {names}")


def _wrk(port: int, script: str, args) -> tuple[str, float, int]:
    cmd = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s", "--latency",
           "-s", script, f"http://127.0.0.1:{port}/get-online-features"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return out, rps, int(bad.group(1)) if bad else 0


def _h2load(port: int, body: str, n: int, args) -> tuple[str, float, float, float, float, int]:
    """Open loop at the goal's rate: (h2load's summary lines, achieved requests/s, p50 ms, p99 ms,
    offered requests/s, non-200 answers), latencies from h2load's per-request logs, each from the
    request's scheduled send.

    One ``h2load`` process per connection, each on its own fixed schedule (``--rps``), started
    ``1 / rate`` apart: their sends interleave evenly. One process with all the connections would
    fire every connection's request at the same instant each period (its timers share one phase),
    a burst of ``clients`` requests that the server's two workers can only answer one after another.
    """
    import time

    import numpy as np

    rate, clients = GOALS[n][0], OPEN_CLIENTS[n]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "body.json"
        data.write_text(body)
        procs, logs = [], []
        t0 = time.perf_counter()
        for i in range(clients):
            logs.append(Path(tmp) / f"requests_{i}.tsv")
            cmd = ["h2load", "--h1", "-c1", "-t1", f"--rps={rate / clients:g}", f"-D{args.duration}",
                   "--warm-up-time=2", "-d", str(data), "-H", "Content-Type: application/json",
                   f"--log-file={logs[-1]}", f"http://127.0.0.1:{port}/get-online-features"]
            time.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
            procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        try:
            outs = [p.communicate(timeout=args.duration + 60)[0] for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        status_l, lat_l = [], []
        period_us = clients / rate * 1e6
        for log in logs:
            rows = sorted((int(a), int(b), int(c)) for a, b, c, *_ in
                          (line.split("\t") for line in log.read_text().splitlines() if line.strip()))
            if not rows:
                continue
            start = np.array([r[0] for r in rows], dtype=np.int64)
            took = np.array([r[2] for r in rows], dtype=np.int64)
            # From the request's scheduled send, not its actual one: a request held back behind a slow
            # answer on its connection counts its wait (no coordinated omission).
            due = start[0] + np.arange(len(rows)) * period_us
            lat_l.append(np.maximum(took, start + took - due) / 1e3)
            status_l.append(np.array([r[1] for r in rows]))
    status = np.concatenate(status_l) if status_l else np.array([], dtype=int)
    lat_ms = np.concatenate(lat_l) if lat_l else np.array([])
    p50, p99 = np.percentile(lat_ms, [50, 99]) if len(lat_ms) else (float("nan"), float("nan"))
    summary = [f"h2load x {clients} (one connection each, --rps={rate / clients:g}, started {1e3 / rate:g} ms apart):"]
    summary += [line.strip() for out in outs[:1] for line in out.splitlines()
                if line.startswith(("finished in", "requests:", "status codes:", "time for request:"))]
    summary.append(f"(first process shown; all {clients}: {len(lat_ms)} requests logged, {int((status != 200).sum())} "
                   f"non-200)")
    return "\n".join(summary), len(lat_ms) / args.duration, float(p50), float(p99), rate, int((status != 200).sum())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=10, help="seconds per handler (max 60)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2, help="server worker processes")
    ap.add_argument("--profile", choices=("postgres", "local"), default="postgres")
    ap.add_argument("--no-open-loop", action="store_true", help="skip the h2load phase")
    args = ap.parse_args()
    if not 0 < args.duration <= 60 or not 0 < args.connections <= 64:
        ap.error("--duration must be 1..60 s and --connections 1..64 (a bounded test)")
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    if not args.no_open_loop and shutil.which("h2load") is None:
        print("h2load is not installed: apt-get install -y nghttp2-client (or --no-open-loop)", file=sys.stderr)
        return 2

    from mt5lab.testing.sandbox import postgres_profile_env, serve_process

    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ["MT5LAB_DATA_DIR"] = tempfile.mkdtemp(prefix="bench_wrk_")
    print(f"machine: {os.cpu_count()} cores; {_uptime()}")
    print(f"mt5lab serve ({args.workers} workers, profile {args.profile}) <- wrk -t{args.threads} "
          f"-c{args.connections} -d{args.duration}s, POST /get-online-features n symbols x mt5_v1")
    results = {}
    env = postgres_profile_env() if args.profile == "postgres" else contextlib.nullcontext()
    with env:
        if args.profile == "local":
            os.environ["MT5LAB_PROFILE"] = "local"
        _setup()
        for label, extra in (("mt5lab handler", []), ("Feast handler", ["--feast-handler"])):
            with serve_process("--workers", str(args.workers), *extra) as (port, _):
                for n in GOALS:
                    body = json.dumps({"feature_service": "mt5_v1", "entities": {"symbol": SYMBOLS[:n]}})
                    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
                        f.write(LUA.format(body=json.dumps(body)))
                    _check(port, body)
                    out, rps, bad = _wrk(port, f.name, args)
                    os.unlink(f.name)
                    results[label, n] = (rps, _p99_ms(out), bad)
                    print(f"--- {label} ({'--feast-handler' if extra else 'default'}), {n} x 42; {_uptime()}")
                    print(out.rstrip())
                    if not args.no_open_loop:
                        out, rps, p50, p99, offered, bad = _h2load(port, body, n, args)
                        results[label, n, "open"] = (rps, p50, p99, offered, bad)
                        print(f"--- {label}, {n} x 42, h2load open loop at {offered:g} requests/s; {_uptime()}")
                        print(out)
    print(f"closed loop (wrk, saturation: p99 is the queue of {args.connections} connections at that rate)")
    print(f"{'symbols':>8}  {'handler':<16}{'req/s':>9}{'p99 ms':>9}{'non-200':>9}")
    for n in GOALS:
        for label in ("mt5lab handler", "Feast handler"):
            rps, p99, bad = results[label, n]
            print(f"{n:>8}  {label:<16}{rps:9.1f}{p99:9.2f}{bad:9d}")
        ours, feast = results["mt5lab handler", n][0], results["Feast handler", n][0]
        ratio = f"{ours / feast:.1f}x" if feast > 0 else "n/a (Feast answered no request in time)"
        print(f"{n:>8}  requests/s mt5lab/Feast: {ratio}")
    if not args.no_open_loop:
        print(f"open loop (h2load --rps): {'symbols':>8}  {'handler':<16}{'offered':>9}{'achieved':>10}"
              f"{'p50 ms':>9}{'p99 ms':>9}{'non-200':>9}  goal")
        for n, (goal_rps, goal_p99) in GOALS.items():
            for label in ("mt5lab handler", "Feast handler"):
                rps, p50, p99, offered, bad = results[label, n, "open"]
                verdict = ""
                if label == "mt5lab handler":
                    ok = rps >= 0.98 * offered and p99 <= goal_p99 and bad == 0
                    verdict = f"{goal_rps:g} req/s at p99 <= {goal_p99:g} ms: {'met' if ok else 'NOT met'}"
                print(f"{'':>26}{n:>8}  {label:<16}{offered:9.0f}{rps:10.1f}{p50:9.2f}{p99:9.2f}{bad:9d}  {verdict}")
            ours, feast = results["mt5lab handler", n, "open"][2], results["Feast handler", n, "open"][2]
            print(f"{'':>26}{n:>8}  p99 Feast/mt5lab at the same offered rate: {feast / ours:.1f}x")
    print(_uptime())
    return 0


if __name__ == "__main__":
    sys.exit(main())
