"""A replay in progress, for notebook 05: :func:`mt5lab.follow` plays an export file in a background
thread while the notebook watches the online store catch up.

``start(nb, path, ...)`` opens the file as ``mt5lab.follow(source="replay:PATH")`` does (a
:class:`mt5lab.bars.sources.ReplaySource`, plus a hook between cycles), applies the timeframe and
starts the follower in a daemon thread with a stop event. Snapshots are taken **in the follower's
thread, between two cycles** (after the online write, before the replay clock moves on) at closes
evenly spaced over the file, so a read never races the writer: per symbol the replay clock (UTC),
the newest online bar's close and status, ``close``/``log_return_1``/``sma_20``, freshness and bars
behind, bars written so far and the last status line's latency (ms). ``watch()`` shows them as
they come, then sets the stop event and joins the thread; ``record()`` records a summary
(``nb.record("replay", ...)``), ``plot()`` saves a figure. An empty ``path``: every call does nothing.
"""

from __future__ import annotations

import queue
import re
import statistics
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: the notebook's import cell stays light
    import pandas as pd

LINE = re.compile(r"^(?P<symbol>\S+) \S+ .* written(?: \(\+(?P<more>\d+) caught up\))?, latency (?P<ms>[\d.]+) ms$")


class LiveReplay:
    """Replay ``path`` (any file ``ingest`` reads; ``""``: none) into notebook session ``nb``'s store.

    Args:
        timeframe: the file's timeframe. speed: a multiple of real time (0: as fast as possible).
        warm: bars per symbol already closed when the follower starts (caught up in its first cycle);
            0: follow's default start (where the store ends, else the first bar's close).
        stop_after: set the stop event after this many live cycles (0: play to the file's end).
        snapshots: how many snapshots, at replay closes evenly spaced from the start to the end.
    """

    def __init__(self, nb, path: str, *, timeframe: str = "H1", speed: float = 0.0, warm: int = 0,
                 stop_after: int = 0, snapshots: int = 4):
        from mt5lab.bars.sources import open_source
        from mt5lab.catalog import check_timeframe

        self.nb, self.path, self.tf, self.speed, self.warm = nb, path, check_timeframe(timeframe), speed, warm
        self.snapshots: list[pd.DataFrame] = []
        self.lines: list[tuple[float, str, int, float]] = []  # (wall s since start, symbol, bars, latency ms)
        self.written: dict[str, int] = {}  # bars written per symbol
        self.first_cycle, self.live_cycles, self.error, self.stop_after = None, 0, None, stop_after
        self.stop, self.queue, self.result = threading.Event(), queue.Queue(), None
        if not path:
            return
        self.src = open_source(f"replay:{path}", timeframe=self.tf, speed=speed)  # what follow opens
        # the hook: after each cycle, before the replay clock advances (_between_cycles returns None)
        self.src.wait = lambda until, stop=None, wait=self.src.wait: self._between_cycles(self.src.clock) or wait(until, stop)
        self.symbols = self.src.symbols()
        closes = self.src.closes.to_list()
        first = min(max(warm, 1), len(closes)) - 1
        self.start = closes[first] if warm else None
        span, k = len(closes) - 1 - first, max(snapshots - 1, 1)
        self.due = sorted({closes[first + round(i * span / k)] for i in range(max(snapshots, 1))})
        nb.apply(self.tf)
        self.t0 = time.perf_counter()
        self.thread = threading.Thread(target=self._run, name="mt5lab-follow-replay", daemon=True)
        self.thread.start()
        print(f"replaying {self.src.bars.height} {self.tf} bars of {', '.join(self.symbols)}", flush=True)

    def _run(self) -> None:
        from mt5lab.online.follow import follow  # mt5lab.follow

        try:
            self.result = follow(self.symbols, timeframe=self.tf, source=self.src, profile=self.nb.profile,
                                 start=self.start, echo=self._echo, stop=self.stop, handle_signals=False)
        except Exception as exc:  # raised by watch(), in the notebook's thread
            self.error = exc
        finally:
            self.queue.put(None)

    def _echo(self, line: str) -> None:
        if m := LINE.match(line):
            s, n = m["symbol"], 1 + int(m["more"] or 0)
            self.written[s] = self.written.get(s, 0) + n
            self.lines.append((time.perf_counter() - self.t0, s, n, float(m["ms"])))

    def _between_cycles(self, clock: datetime) -> None:
        self.live_cycles += self.first_cycle is not None
        self.first_cycle = sum(self.written.values()) if self.first_cycle is None else self.first_cycle
        if self.due and clock >= self.due[0]:
            self.due = [t for t in self.due if t > clock]
            self.queue.put(self.snapshot(clock))
        if self.stop_after and self.live_cycles >= self.stop_after:
            self.stop.set()  # the follower stops before the next bar

    def snapshot(self, clock: datetime) -> pd.DataFrame:
        """The online store at replay time ``clock`` (UTC), one row per symbol (columns above)."""
        import pandas as pd

        from mt5lab.online.freshness import freshness
        from mt5lab.online.reader import reader

        rows = reader(self.nb.profile, self.tf).read(self.symbols, now=clock, keep_expired=True)
        view = rows.view_of["close"]
        fresh = freshness(self.symbols, profile=self.nb.profile, timeframes=self.tf, now=clock)
        fresh = fresh[fresh["view"] == view].set_index("symbol")
        last = {s: ms for _, s, _, ms in self.lines}
        return pd.DataFrame({
            "replay clock": [clock] * len(self.symbols), "symbol": self.symbols,
            "newest online bar (close)": rows.event_timestamps[view], "online status": rows.row_status(),
            **{f: rows.values[f] for f in ("close", "log_return_1", "sma_20")},
            "freshness": [fresh["status"].get(s) for s in self.symbols],
            "bars behind": [fresh["bars_behind"].get(s) for s in self.symbols],
            "bars written": [self.written.get(s, 0) for s in self.symbols],
            "latency (ms)": [last.get(s) for s in self.symbols]})

    def watch(self, timeout: float = 600.0):
        """Show each snapshot as the follower takes it; when the replay ends (or ``timeout`` s pass),
        set the stop event, join the thread and show the state it stopped in. Raises what it raised."""
        if not self.path:
            print("no replay (set the replay parameter to an export file)")
            return None
        end = time.perf_counter() + timeout
        try:
            while (snap := _next(self.queue, end)) is not None:
                self._show(snap)
        finally:  # the file's end, the timeout or an interrupted cell: the follower stops between bars
            self.stop.set()
            self.thread.join()
        if self.error is not None:
            raise self.error
        if not self.snapshots or self.snapshots[-1]["replay clock"][0] != self.src.clock:
            self._show(self.snapshot(self.src.clock))  # stopped early: the state it stopped in
        print(self.result.summary(), flush=True)

    def _show(self, snap: pd.DataFrame) -> None:
        self.snapshots.append(snap)
        _display(f"snapshot {len(self.snapshots)} at replay clock {snap['replay clock'][0]:%Y-%m-%d %H:%M} UTC, "
                 f"{time.perf_counter() - self.t0:.1f} s in", snap)

    def summary(self) -> dict:
        """The run: bars in the file, written (first cycle, live) and stored, stop, last snapshot, latency (ms)."""
        res, last, first = self.result, self.snapshots[-1].set_index("symbol"), self.first_cycle or 0
        lat = [ms for *_, ms in self.lines] or [float("nan")]
        stored = self.nb.store.read_features(self.tf, self.symbols)["symbol"].to_list()  # the offline store's rows
        return {"file": str(self.path), "timeframe": self.tf, "symbols": self.symbols, "speed": self.speed,
                "warm": self.warm, "bars_in_file": self.src.bars.height, "bars_written": res.bars,
                "first_cycle_bars": first, "live_bars": res.bars - first, "cycles": res.cycles,
                "stored_feature_rows": {s: stored.count(s) for s in self.symbols},
                "stopped": res.stopped, "failing": sorted(res.failing), "snapshots": len(self.snapshots),
                "snapshot_clocks": [s["replay clock"][0] for s in self.snapshots],
                "snapshot_bars_written": [int(s["bars written"].sum()) for s in self.snapshots],
                **{k: last[c].to_dict() for k, c in (("newest_online", "newest online bar (close)"),
                                                     ("online_status", "online status"), ("freshness", "freshness"))},
                "latency_ms_p50": round(statistics.median(lat), 2), "latency_ms_max": round(max(lat), 2)}

    def record(self):
        """``nb.record("replay", summary())``; nothing without a replay."""
        return self.nb.record("replay", self.summary()) if self.path else None

    def plot(self) -> None:
        """Bars written against wall time and each status line's latency (PNG ``replay_progress``)."""
        if not self.path or not self.lines:
            return
        import matplotlib.pyplot as plt
        import numpy as np

        t, sym, n, ms = (np.array(c) for c in zip(*self.lines, strict=True))
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
        ax.step(np.r_[0, t], np.r_[0, np.cumsum(n)], where="post", color="black", label="all symbols")
        ax.set(ylabel="bars written", title=f"{self.tf} replay at {f'{self.speed:g}x' if self.speed else 'full speed'}")
        for k, s in enumerate(self.symbols):
            ax2.plot(t[sym == s], ms[sym == s], "ox"[k % 2], ms=4, label=s)
        ax2.set(ylabel="latency, bar available -> online write (ms)", title=f"p50 {np.percentile(ms, 50):.1f} ms")
        for a in (ax, ax2):
            a.set(xlabel="seconds since the follower started")
            a.grid(alpha=0.3)
            a.legend()
        self.nb.figure(fig, "replay_progress")


def _next(q: queue.Queue, end: float):
    """The next item of ``q``, or None once the wall clock passes ``end`` (perf_counter s)."""
    try:
        return q.get(timeout=max(end - time.perf_counter(), 0.01))
    except queue.Empty:
        return None


def _display(title: str, frame: pd.DataFrame) -> None:
    print(title, flush=True)
    try:
        from IPython.display import display
    except ImportError:  # pragma: no cover - plain python
        display = print
    display(frame)


start = LiveReplay  # the notebook's call: start(nb, path, ...)
