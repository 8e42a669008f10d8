"""The live feed: follow a source (an MT5 terminal, or a file replayed as if live) and keep the offline
and online stores current, one :func:`mt5lab.online.update.update` per bar close.

Loop, per cycle (a bar close plus a grace on a terminal; the next bar close in the file on a replay):

1. For each symbol, ask the source for the bars closed since the symbol's last stored bar
   (:mod:`mt5lab.bars.sources`: ``bars_since``). On start that is the stored history's end, so
   everything missed while the follower was down (an outage, a kill) is backfilled first, in order,
   in one update. The first cycle also re-sends each symbol's last stored bar: unchanged, it costs
   nothing offline and rewrites the online row, which repairs a run killed between its offline and
   online writes. A forming bar is never fetched, and ``update`` refuses one anyway (``now`` = the
   source's clock: a replay's simulated now is the replayed bar's close).
2. One ``update`` for all symbols with new bars (validate, compute, offline + online, under the
   store's lock); a symbol that failed last time gets its own ``update``, after that one. The
   follower keeps each symbol's last ``W + 1`` stored bars in memory
   (:class:`mt5lab.features.incremental.Tails`, loaded at start, checked against the store in each
   update), so a bar close costs one bar's work per symbol, not a read of its history. If the
   update fails, each symbol is retried alone, so a bad bar, a source error or a store error for
   one symbol never stops the others; a failing symbol is retried with exponential backoff
   (on the source's clock), its online row stays where it was (``mt5lab check freshness`` shows it
   stale), and each fault and each recovery is one log line (logger ``mt5lab.follow``).
3. One status line per symbol and bar: symbol, bar open time, bars written, latency from the bar's
   availability (its close on a terminal, its release on a replay) to the online write.

Restartable: every write is an idempotent upsert and ``update`` recomputes anything stored without
features, so a follower killed at any point (``kill -9`` mid-update included) and started again
converges to what a batch ingest + build + materialize of the same bars gives. SIGTERM/SIGINT stop it
between bars.
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
import time as _time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import polars as pl

from mt5lab.bars.calendars import calendar_for, expected_latest_close
from mt5lab.bars.clock import from_server, to_server
from mt5lab.bars.sources import ReplaySource, open_source
from mt5lab.catalog import TIMEFRAMES, check_timeframe
from mt5lab.config import resolve
from mt5lab.errors import ConfigError
from mt5lab.features.incremental import Tails
from mt5lab.online.reader import reader
from mt5lab.online.update import update
from mt5lab.storage import open_store

log = logging.getLogger("mt5lab.follow")
BACKOFF = (timedelta(seconds=1), timedelta(minutes=5))
"""A failing symbol is retried after 1 s, 2 s, 4 s, ... (source clock), at most 5 min (or one bar)."""


@dataclass
class Bar:
    """One status line: a symbol's newest bar written in a cycle."""

    symbol: str
    time: datetime
    bars: int
    latency: float  # seconds from availability to the online write

    def line(self, timeframe: str) -> str:
        more = f" (+{self.bars - 1} caught up)" if self.bars > 1 else ""
        return f"{self.symbol} {timeframe} {self.time:%Y-%m-%d %H:%M} UTC written{more}, latency " \
               f"{self.latency * 1000:.1f} ms"


@dataclass
class FollowResult:
    timeframe: str
    cycles: int = 0
    bars: int = 0
    written: list[Bar] = field(default_factory=list)
    failing: dict[str, str] = field(default_factory=dict)  # symbol -> last error, at the end
    stopped: str = ""  # "once", "end of replay", "signal SIGTERM", "stop"

    def summary(self) -> str:
        bad = f"; failing: {', '.join(sorted(self.failing))}" if self.failing else ""
        return f"{self.timeframe}: {self.bars} bars in {self.cycles} cycles, stopped ({self.stopped}){bad}"


class _Failures:
    """Per symbol: consecutive failures, last error and when to retry (source clock)."""

    def __init__(self, cap: timedelta):
        self.cap, self.count, self.error, self.retry_at = cap, {}, {}, {}

    def due(self, symbol: str, now: datetime) -> bool:
        return symbol not in self.retry_at or self.retry_at[symbol] <= now

    def fail(self, symbol: str, what: str, exc: BaseException, now: datetime) -> None:
        n = self.count.get(symbol, 0) + 1
        msg = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        delay = min(BACKOFF[0] * 2 ** (n - 1), self.cap)
        if n == 1 or msg != self.error.get(symbol):
            log.warning("%s: %s failed (%s: %s); retrying with backoff, stale until then", symbol, what,
                        type(exc).__name__, msg)
        self.count[symbol], self.error[symbol], self.retry_at[symbol] = n, msg, now + delay

    def ok(self, symbol: str) -> None:
        if symbol in self.count:
            log.warning("%s: recovered after %d failed attempts", symbol, self.count[symbol])
        for d in (self.count, self.error, self.retry_at):
            d.pop(symbol, None)


class _Collector:
    """Between two bars: the young generations every time, everything every ``full`` bars (the
    automatic collector is off while following, so nothing else reclaims cycles that got old)."""

    def __init__(self, full: int = 100):
        self.n, self.full = 0, full

    def __call__(self) -> None:
        self.n += 1
        gc.collect(2 if self.n % self.full == 0 else 1)


def next_close(now: datetime, timeframe: str, server_tz: str) -> datetime:
    """The close (UTC) of the bar forming at ``now`` on the server clock's grid (W1: the next hour)."""
    step = TIMEFRAMES[timeframe]
    if step > timedelta(days=1):
        step = timedelta(hours=1)
    wall = to_server(pl.Series([now]), server_tz)
    epoch = pl.Series([datetime.fromtimestamp(0, UTC).replace(tzinfo=None)])
    opens = epoch + (wall - epoch).dt.total_microseconds() // (step // timedelta(microseconds=1)) * step
    close = from_server(opens + step, server_tz)[0]
    return close if close is not None and close > now else now + step


class Follower:
    def __init__(self, symbols, *, timeframe: str, source, profile=None, server_tz: str | None = None,
                 calendar: str | None = None, grace: timedelta | None = None, echo=None,
                 stop: threading.Event | None = None):
        self.tf = check_timeframe(timeframe)
        self.step = TIMEFRAMES[self.tf]
        self.prof = resolve(profile)
        self.source = source
        self.symbols = list(symbols)
        self.grid = getattr(source, "grid_tz", None) or server_tz or "UTC"
        self.calendar = calendar or calendar_for(self.symbols)
        self.grace = timedelta(seconds=2) if grace is None else grace
        self.echo = echo or (lambda _line: None)
        self.stop = stop or threading.Event()
        self.store = open_store(self.prof)
        reader(self.prof, self.tf).tables  # noqa: B018 - fails now (one line) if `mt5lab apply` never ran
        latest = self.store.latest_features(self.tf, self.symbols)
        self.last: dict[str, datetime] = dict(zip(latest["symbol"].to_list(), latest["time"].to_list(),
                                                  strict=True))
        self.resend = set(self.last)
        self.tails = Tails(self.tf)  # per symbol the last W + 1 stored bars: no history read per bar
        if self.last:
            self.tails.load(self.store, sorted(self.last), max(self.last.values()) + self.step)
        self.failures = _Failures(min(BACKOFF[1], self.step))
        self.result = FollowResult(self.tf)

    # one cycle ---------------------------------------------------------------------------------
    def cycle(self) -> None:
        now = self.source.server_time()
        fetched: dict[str, pl.DataFrame] = {}
        for s in self.symbols:
            if not self.failures.due(s, now):
                continue
            since = self.last.get(s)
            if since is not None and s in self.resend:
                since = since - timedelta(seconds=1)
            try:
                bars = self.source.bars_since(s, self.tf, since)
            except Exception as exc:
                self.failures.fail(s, "fetch", exc, now)
                continue
            if bars.height:
                fetched[s] = bars
        self.result.cycles += 1
        # Symbols that failed last time go alone, after the others, so they cannot delay them.
        healthy = {s: b for s, b in fetched.items() if s not in self.failures.count}
        if healthy and not self._update(healthy, now) and len(healthy) > 1:
            for s, bars in healthy.items():  # isolate the failing symbol(s)
                self._update({s: bars}, now)
        for s, bars in fetched.items():
            if s not in healthy:
                self._update({s: bars}, now)

    def _update(self, fetched: dict[str, pl.DataFrame], now: datetime) -> bool:
        try:
            res = update(pl.concat(list(fetched.values())), profile=self.prof, timeframe=self.tf, now=now,
                         store=self.store, server_tz=self.grid, calendar=self.calendar,
                         source=f"{self.tf}:{','.join(fetched)}", tails=self.tails)
        except Exception as exc:
            if len(fetched) == 1:
                (s,) = fetched
                self.failures.fail(s, "update", exc, now)
            return False
        done = res.online_at or _time.time()  # latency ends at the online write
        for s, bars in fetched.items():
            newest = bars["time"].max()
            fresh = bars.height if s not in self.resend else int((bars["time"] > self.last[s]).sum())
            self.last[s] = max(newest, self.last.get(s, newest))
            self.resend.discard(s)
            self.failures.ok(s)
            if fresh:
                lat = done - self.source.available_at(newest + self.step)
                rec = Bar(s, newest, fresh, lat)
                self.result.bars += fresh
                self.result.written.append(rec)
                self.echo(rec.line(self.tf))
        return True

    # scheduling --------------------------------------------------------------------------------
    def wake_at(self) -> datetime:
        """A terminal: the next bar close plus grace, earlier for a retry or a symbol still behind."""
        now = self.source.server_time()
        at = next_close(now, self.tf, self.grid) + self.grace
        due = [t for t in self.failures.retry_at.values()]
        expected = expected_latest_close(now - self.grace, self.tf, self.calendar, self.grid)
        if any(self.last.get(s) is None or self.last[s] + self.step < expected for s in self.symbols):
            due.append(now + min(timedelta(seconds=5), self.step / 4))  # the terminal has not got it yet
        return min([at, *due])

    def run(self, once: bool = False, freeze_gc: bool = False) -> FollowResult:
        if not freeze_gc:
            return self._loop(once, between=None)
        # The heap built at start (Feast, pandas, the tails) leaves the cyclic GC's reach while the
        # loop runs (gc.freeze, as servers do after warm-up), and the automatic collector is off:
        # the loop collects between bars instead (_Collector), after a cycle's writes and before
        # waiting for the next close. Measured without this: full collections of 25-140 ms and young
        # ones of ~20 ms landing inside some bars' latency.
        enabled = gc.isenabled()
        gc.collect()
        gc.freeze()
        gc.disable()
        try:
            return self._loop(once, between=_Collector())
        finally:
            if enabled:
                gc.enable()
            gc.unfreeze()

    def _loop(self, once: bool, between) -> FollowResult:
        while True:
            self.cycle()
            if between is not None:
                between()
            if once:
                self.result.stopped = "once"
                break
            if self.stop.is_set():
                self.result.stopped = "stop"
                break
            until = None if isinstance(self.source, ReplaySource) else self.wake_at()
            if not self.source.wait(until, self.stop):
                self.result.stopped = "stop" if self.stop.is_set() else "end of replay"
                break
            try:
                self.source.reconnect(self.symbols)
            except Exception as exc:
                log.warning("source: reconnect failed (%s)", exc)
        self.result.failing = dict(self.failures.error)
        return self.result


def follow(symbols: list[str] | str | None = None, *, timeframe: str = "H1", source="mt5", profile=None,
           server_tz: str | None = None, once: bool = False, speed: float | None = None,
           start: datetime | None = None, calendar: str | None = None, grace: timedelta | None = None,
           history: int = 1000, echo=None, stop: threading.Event | None = None,
           handle_signals: bool | None = None, freeze_gc: bool | None = None, api=None) -> FollowResult:
    """Follow ``source`` and keep the stores current: at every bar close, the bars closed since each
    symbol's last stored bar go through :func:`mt5lab.update` (offline + online in one step).

    Args:
        symbols: symbols to follow (a replay: default every symbol in the file).
        source: ``"mt5"`` (the MetaTrader5 package), ``"mt5linux"``, ``"replay:PATH"`` (any file
            ``ingest`` reads), or a source object (:mod:`mt5lab.bars.sources`).
        server_tz: the broker's server clock (required for a terminal; default ``MT5LAB_SERVER_TZ``).
            A terminal whose tick time disagrees with it is refused.
        once: one cycle (catch up everything closed by now, then return): for cron. A replay with
            ``once`` plays the whole file in one cycle unless ``start`` says otherwise.
        speed: replay at ``speed`` x real time (default: as fast as possible).
        start: a replay's simulated start instant (default: where the store ends, else the first
            bar's close; the file's end with ``once``).
        grace: wait after a bar's close before fetching it (terminal; default 2 s).
        echo: called with each status line (default: none); ``stop``: set it to stop between bars.
        handle_signals: SIGTERM/SIGINT set ``stop`` (default: in the main thread).
        freeze_gc: freeze the heap built so far out of the cyclic GC while following (``gc.freeze``)
            and collect between bars instead of whenever allocation counts say (collections of
            20-140 ms landed inside bars' latency). Process-wide, so the default is: only in the
            main thread (the CLI, a service), not from a notebook's background thread.
    """
    from mt5lab.bars.clock import resolve_server_tz

    tf = check_timeframe(timeframe)
    if isinstance(symbols, str):
        symbols = [s.strip() for s in symbols.split(",") if s.strip()]
    if isinstance(source, str):
        tz = server_tz
        if source in ("mt5", "mt5linux"):
            tz = resolve_server_tz(server_tz, f"source {source}", required=True)
        src = open_source(source, timeframe=tf, symbols=symbols, server_tz=tz, speed=speed, api=api,
                          history=history)
    else:
        src = source
    if not symbols:
        if not isinstance(src, ReplaySource):
            raise ConfigError("give the symbols to follow (--symbols EURUSD,GBPUSD)")
        symbols = src.symbols()
    stop = stop or threading.Event()
    fol = Follower(symbols, timeframe=tf, source=src, profile=profile, server_tz=server_tz,
                   calendar=calendar, grace=grace, echo=echo, stop=stop)
    if isinstance(src, ReplaySource):
        if start is not None:
            src.start_at(start)
        elif once:
            src.start_at(src.end())
        elif fol.last and all(s in fol.last for s in symbols):
            src.start_at(max(src.closes[0], min(fol.last.values()) + fol.step))
        else:
            src.start_at(src.clock)
    signalled: list[str] = []
    main_thread = threading.current_thread() is threading.main_thread()  # the default of both switches
    restore = _install_signals(stop, signalled) if (
        main_thread if handle_signals is None else handle_signals) else {}
    try:
        if hasattr(src, "connect"):
            src.connect(symbols)
        res = fol.run(once=once, freeze_gc=main_thread if freeze_gc is None else freeze_gc)
        if signalled and res.stopped == "stop":
            res.stopped = f"signal {signalled[0]}"
        return res
    finally:
        for sig, handler in restore.items():
            signal.signal(sig, handler)
        src.close()


def _install_signals(stop: threading.Event, signalled: list[str]) -> dict:
    def handler(signum, _frame):
        if signalled:  # a second signal: stop now
            raise KeyboardInterrupt
        signalled.append(signal.Signals(signum).name)
        log.warning("%s: stopping after the current bar", signalled[0])
        stop.set()

    old = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        old[sig] = signal.getsignal(sig)
        signal.signal(sig, handler)
    return old
