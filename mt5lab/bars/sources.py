"""Where live bars come from: a MetaTrader 5 terminal (``mt5``, ``mt5linux``) or an export file played
back as if live (``replay:PATH``), behind one small interface that :mod:`mt5lab.online.follow` uses.

A source has a clock and closed bars:

* ``server_time()``: the current instant (UTC) as the source sees it: the machine's UTC clock for a
  terminal (checked against the terminal's tick time at connect), the simulated instant for a replay;
* ``bars_since(symbol, timeframe, since)``: the **closed** bars of ``symbol`` with ``time > since``
  (``since=None``: the source's history), canonical (:data:`mt5lab.catalog.BAR_SCHEMA`), their
  server-clock times converted to UTC by :mod:`mt5lab.bars.clock`. A bar still forming is never
  returned;
* ``available_at(close)``: the wall time (``time.time()``) at which a bar closing at ``close`` became
  available, the start of the latency the follower reports;
* ``wait(until, stop)``: let the clock reach ``until`` (sleep for a terminal; for a replay, advance
  the simulated clock at ``speed`` x real time, or at once); False when the source has nothing more
  (the end of a replay) or ``stop`` was set.

:class:`Mt5Source` is a thin adapter over the ``MetaTrader5`` package's API (``mt5linux`` has the same
one): ``copy_rates_from_pos`` returns MqlRates structured arrays (``time`` int seconds of the server
clock), converted by :func:`rates_to_bars`. The terminal cannot run on CI machines: the conversion is
tested on recorded arrays. :class:`ReplaySource` plays any file ``ingest`` reads.

May import: the base modules and :mod:`mt5lab.storage` (through the rest of :mod:`mt5lab.bars`).
"""

from __future__ import annotations

import importlib
import threading
import time as _time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from mt5lab.bars.calendars import calendar_for, is_open
from mt5lab.bars.clock import check_server_tz, from_epoch, to_server
from mt5lab.bars.readers import iter_bars
from mt5lab.bars.schema import canonical
from mt5lab.catalog import BAR_SCHEMA, TIMEFRAMES, check_timeframe
from mt5lab.errors import ConfigError, Mt5LabError

MQL_RATES = np.dtype([("time", "<i8"), ("open", "<f8"), ("high", "<f8"), ("low", "<f8"), ("close", "<f8"),
                      ("tick_volume", "<u8"), ("spread", "<i4"), ("real_volume", "<u8")])
"""The dtype of MT5's ``copy_rates_*`` arrays (MqlRates)."""
MT5_TIMEFRAMES = {"M1": "TIMEFRAME_M1", "M5": "TIMEFRAME_M5", "M15": "TIMEFRAME_M15",
                  "M30": "TIMEFRAME_M30", "H1": "TIMEFRAME_H1", "H4": "TIMEFRAME_H4",
                  "D1": "TIMEFRAME_D1", "W1": "TIMEFRAME_W1"}
CLOCK_TOLERANCE = timedelta(minutes=20)
"""A terminal tick this far from the instant ``--server-tz`` predicts (while the market is open, or at
all when it lies in the future) means the clock is wrong: the follower refuses to run."""
MAX_BARS = 100_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SourceError(Mt5LabError):
    """The source cannot deliver bars now (terminal disconnected, file unreadable): retried."""

    exit_code = 4


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema=BAR_SCHEMA)


def rates_to_bars(rates, symbol: str, timeframe: str, server_tz: str, source: str = "mt5") -> pl.DataFrame:
    """An MqlRates structured array (``time`` int seconds of the server clock) to canonical bars (UTC)."""
    arr = np.asarray(rates)
    if arr.size == 0:
        return _empty()
    missing = [n for n in MQL_RATES.names if n not in (arr.dtype.names or ())]
    if missing:
        raise SourceError(f"{source}: rates of {symbol} lack fields {', '.join(missing)}")
    naive = from_epoch(pl.Series(arr["time"].astype(np.int64)), "s")  # int seconds of the server clock
    frame = pl.DataFrame({
        "symbol": [symbol] * arr.size, "time": naive,
        **{c: arr[c].astype(np.float64) for c in ("open", "high", "low", "close")},
        "tick_volume": arr["tick_volume"].astype(np.int64), "spread": arr["spread"].astype(np.int64),
        "real_volume": arr["real_volume"].astype(np.int64)})
    return canonical(frame, timeframe, server_tz=server_tz, source=f"{source}:{symbol}")


def _closed(bars: pl.DataFrame, timeframe: str, since: datetime | None, now: datetime) -> pl.DataFrame:
    step = TIMEFRAMES[timeframe]
    keep = pl.col("time") + step <= now
    if since is not None:
        keep = keep & (pl.col("time") > since)
    return bars.filter(keep)


def _micros(t: pl.Series) -> np.ndarray:
    """tz-aware times as int64 microseconds since the epoch (UTC)."""
    return t.dt.convert_time_zone("UTC").dt.epoch("us").to_numpy()


def _micro(t: datetime) -> int:
    """A tz-aware instant as int microseconds since the epoch."""
    return (t - _EPOCH) // timedelta(microseconds=1)


def _sleep_until(wall: float, stop: threading.Event | None) -> bool:
    while (left := wall - _time.time()) > 0:
        if stop is not None and stop.wait(min(left, 1.0)):
            return False
        if stop is None:
            _time.sleep(min(left, 1.0))
    return not (stop is not None and stop.is_set())


class Mt5Source:
    """The ``MetaTrader5`` (Windows) or ``mt5linux`` (RPyC to a terminal under Wine) API.

    ``api``: the module object (or an ``mt5linux.MetaTrader5()`` instance); default: import it.
    ``history``: bars fetched for a symbol with nothing stored yet. ``clock``: the UTC now (default the
    machine's clock, which must run on NTP time).
    """

    def __init__(self, kind: str = "mt5", *, server_tz: str, api=None, history: int = 1000,
                 init_kwargs: dict | None = None, clock=None):
        if not server_tz:
            raise ConfigError(f"{kind}: the terminal stamps bars on the broker's server clock: pass "
                              "--server-tz (server_tz=), e.g. NY+7")
        self.kind, self.server_tz, self.history = kind, check_server_tz(server_tz), history
        self.grid_tz = self.server_tz
        self._init = init_kwargs or {}
        self.api = api if api is not None else self._import(kind)
        self._connected = False
        self._clock = clock or (lambda: datetime.now(UTC))

    @staticmethod
    def _import(kind: str):
        name = "MetaTrader5" if kind == "mt5" else "mt5linux"
        try:
            mod = importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"source {kind}: the {name} package is not installed (pip install {name})") from exc
        return mod.MetaTrader5() if kind == "mt5linux" else mod

    def connect(self, symbols: list[str]) -> None:
        if not self.api.initialize(**self._init):
            raise SourceError(f"{self.kind}: initialize() failed: {self.api.last_error()}")
        self._connected = True
        for s in symbols:
            self.api.symbol_select(s, True)
        self.check_clock(symbols)

    def check_clock(self, symbols: list[str], now: datetime | None = None) -> None:
        """Compare the terminal's newest tick time (server clock) with what ``server_tz`` predicts."""
        now = now or self.server_time()
        ticks = [t for t in (self.api.symbol_info_tick(s) for s in symbols) if t is not None]
        if not ticks:
            return
        seen = max(int(t.time) for t in ticks)
        wall = to_server(pl.Series([now]), self.server_tz)[0]  # the server wall time server_tz predicts
        observed = datetime.fromtimestamp(seen, UTC).replace(tzinfo=None)  # naive server wall time
        diff = observed - wall
        stale_ok = not is_open(now, calendar_for(symbols))  # a closed market leaves old ticks
        if diff > CLOCK_TOLERANCE or (diff < -CLOCK_TOLERANCE and not stale_ok):
            offset = round((observed - now.replace(tzinfo=None)) / timedelta(minutes=30)) / 2
            raise ConfigError(f"{self.kind}: the terminal's server clock reads {observed:%Y-%m-%d %H:%M} at "
                              f"{now:%H:%M} UTC (about UTC{offset:+g}), but --server-tz {self.server_tz} "
                              f"says {wall:%Y-%m-%d %H:%M}: fix --server-tz")

    def server_time(self) -> datetime:
        return self._clock()

    def available_at(self, close: datetime) -> float:
        return close.timestamp()

    def wait(self, until: datetime, stop: threading.Event | None = None) -> bool:
        return _sleep_until(until.timestamp(), stop)

    def bars_since(self, symbol: str, timeframe: str, since: datetime | None) -> pl.DataFrame:
        tf = check_timeframe(timeframe)
        now = self.server_time()
        n = self.history if since is None else int((now - since) / TIMEFRAMES[tf]) + 2
        n = max(1, min(n, MAX_BARS))
        try:  # position 0 is the newest bar, maybe still forming: dropped below unless it has closed
            rates = self.api.copy_rates_from_pos(symbol, getattr(self.api, MT5_TIMEFRAMES[tf]), 0, n)
        except (OSError, EOFError) as exc:  # RPyC / terminal connection lost
            self._connected = False
            raise SourceError(f"{self.kind}: connection lost: {exc}") from exc
        if rates is None:
            err = self.api.last_error()
            self._connected = False
            raise SourceError(f"{self.kind}: copy_rates_from_pos({symbol}) failed: {err}")
        return _closed(rates_to_bars(rates, symbol, tf, self.server_tz, self.kind), tf, since, now)

    def reconnect(self, symbols: list[str]) -> None:
        if not self._connected:
            self.connect(symbols)

    def close(self) -> None:
        if self._connected:
            self.api.shutdown()
            self._connected = False


class ReplaySource:
    """An export file (any format ``ingest`` reads) played bar by bar on a simulated clock.

    The clock starts at ``start`` (default: the first bar's close) and moves from one bar close in
    the file to the next, at ``speed`` x real time (``None`` or 0: as fast as possible).
    """

    def __init__(self, path, *, timeframe: str, symbol: str | None = None, server_tz: str | None = None,
                 speed: float | None = None, format: str = "auto"):
        self.path, self.timeframe = Path(path), check_timeframe(timeframe)
        self.speed = speed or None
        stream = iter_bars(self.path, symbol=symbol, timeframe=self.timeframe, format=format,
                           server_tz=server_tz)
        bars = pl.concat(list(stream)).drop("source_row")
        self.grid_tz = stream.grid_tz
        self.bars = bars.sort("time", "symbol", maintain_order=True)
        self._by_symbol = {k[0]: v for k, v in
                           self.bars.partition_by("symbol", as_dict=True, maintain_order=True).items()}
        self._opens = {s: _micros(b["time"]) for s, b in self._by_symbol.items()}  # sorted, for bars_since
        self.closes = (self.bars["time"] + TIMEFRAMES[self.timeframe]).unique().sort()
        self.clock = self.closes[0] if self.closes.len() else datetime.now(UTC)
        self._released: dict[datetime, float] = {}
        self._anchor: tuple[float, datetime] | None = None

    def symbols(self) -> list[str]:
        return self.bars["symbol"].unique(maintain_order=True).to_list()

    def start_at(self, t: datetime) -> None:
        self.clock = t
        self._anchor = None
        self._released = {t: _time.time()}

    def end(self) -> datetime:
        return self.closes[-1] if self.closes.len() else self.clock

    def server_time(self) -> datetime:
        return self.clock

    def available_at(self, close: datetime) -> float:
        return self._released.get(close, self._released.get(self.clock, _time.time()))

    def next_close(self) -> datetime | None:
        i = int(self.closes.search_sorted(self.clock, side="right"))
        return self.closes[i] if i < self.closes.len() else None

    def wait(self, until: datetime, stop: threading.Event | None = None) -> bool:
        """Advance to the first bar close after the clock (``until`` is ignored: a replay jumps to
        the next close in the file, at ``speed``)."""
        nxt = self.next_close()
        if nxt is None or (stop is not None and stop.is_set()):
            return False
        if self.speed:
            if self._anchor is None:
                self._anchor = (_time.time(), self.clock)
            wall0, sim0 = self._anchor
            if not _sleep_until(wall0 + (nxt - sim0).total_seconds() / self.speed, stop):
                return False
        self.clock = nxt
        self._released[nxt] = _time.time()
        return True

    def bars_since(self, symbol: str, timeframe: str, since: datetime | None) -> pl.DataFrame:
        if check_timeframe(timeframe) != self.timeframe:
            raise ConfigError(f"replay {self.path.name}: holds {self.timeframe} bars, not {timeframe}")
        bars = self._by_symbol.get(symbol)
        if bars is None:
            return _empty()
        opens = self._opens[symbol]  # the _closed rule by binary search: one slice per call
        hi = int(np.searchsorted(opens, _micro(self.clock - TIMEFRAMES[self.timeframe]), side="right"))
        lo = 0 if since is None else int(np.searchsorted(opens, _micro(since), side="right"))
        return bars.slice(lo, max(0, hi - lo))

    def reconnect(self, symbols: list[str]) -> None:
        pass

    def close(self) -> None:
        pass


def open_source(spec: str, *, timeframe: str, symbols: list[str] | None = None, server_tz: str | None = None,
                speed: float | None = None, api=None, history: int = 1000):
    """``mt5``, ``mt5linux`` or ``replay:PATH`` to a source."""
    if spec.startswith("replay:"):
        path = spec[len("replay:"):]
        single = symbols[0] if symbols and len(symbols) == 1 else None
        return ReplaySource(path, timeframe=timeframe, symbol=single if not _has_symbol_column(path) else None,
                            server_tz=server_tz, speed=speed)
    if spec in ("mt5", "mt5linux"):
        return Mt5Source(spec, server_tz=server_tz, api=api, history=history)
    raise ConfigError(f"unknown source {spec!r}: expected mt5, mt5linux or replay:PATH")


def _has_symbol_column(path: str) -> bool:
    """Whether a generic table has a ``symbol`` column (an MT5/MT4 export never has one)."""
    p = Path(path)
    try:
        if p.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            names = pq.ParquetFile(p).schema_arrow.names
        else:
            with open(p, "rb") as fh:
                head = fh.readline().decode("utf-8", "replace").lower()
            names = head.replace("\t", ",").replace(";", ",").split(",")
    except OSError:
        return False
    return any(n.strip().strip('"').lower() == "symbol" for n in names)
