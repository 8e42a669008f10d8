"""``make demo`` / ``mt5lab demo``: samples in, 42 features out, read back online, one PNG saved.

Idempotent: a second run finds the same bars and features and writes nothing. The online read goes
through :class:`mt5lab.online.reader.OnlineReader` (ttl applied: each view's event timestamp and
status, expired values null), once as of now and once as of each timeframe's last bar close (the
samples are historical); ``mt5lab demo`` prints both (:mod:`mt5lab.cli.render`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from mt5lab.bars.ingest import load_samples, write
from mt5lab.bars.samples import SAMPLES
from mt5lab.config import data_dir, resolve
from mt5lab.feast_repo.store import apply
from mt5lab.features.build import build
from mt5lab.online.materialize import materialize
from mt5lab.online.reader import OnlineRows, reader
from mt5lab.storage import open_store


def run_demo(profile=None, progress: bool = True, echo=print) -> dict:
    prof = resolve(profile)
    store = open_store(prof)
    bars, reports = load_samples()
    ing = write(store, bars, reports)
    echo(f"ingest: {ing.rows} sample bars validated; {ing.write.inserted} new, "
         f"{ing.write.updated} revised, {ing.write.unchanged} unchanged")
    built = build(store, progress=progress)
    for tf, res in built.items():
        echo(f"build {tf}: {res.inserted} new, {res.updated} revised, {res.unchanged} unchanged feature rows")
    now = datetime.now(UTC)
    online: dict[str, OnlineRows] = {}
    replay: dict[str, tuple[datetime, OnlineRows]] = {}
    for tf in sorted({s.timeframe for s in SAMPLES.values()}):
        summary = apply(prof, tf)
        echo(f"apply {tf}: {summary['views']} views, {summary['features']} features, "
             f"{summary['services']} feature service")
        mat = materialize(store, prof, tf, progress=progress)
        echo(f"materialize {tf}: {mat.written} of {mat.symbols} symbols written to the online store")
        symbols = sorted(s.symbol for s in SAMPLES.values() if s.timeframe == tf)
        online[tf] = reader(prof, tf).read(symbols, now)
        if (last := last_close(online[tf])) is not None:
            replay[tf] = (last, reader(prof, tf).read(symbols, last))
    chart = save_chart(store)
    echo(f"chart: {chart}")
    return {"ingest": ing.summary(), "now": now, "online": online, "replay": replay, "chart": chart}


def last_close(rows: OnlineRows) -> datetime | None:
    """The newest event timestamp of a read (its latest bar close), None when nothing was found."""
    stamps = [ts for per_view in rows.event_timestamps.values() for ts in per_view if ts is not None]
    return max(stamps, default=None)


def save_chart(store, symbol: str = "GOOG") -> Path:
    from mt5lab.plots.base import price_overview, save

    sample = SAMPLES[symbol]
    feats = store.read_features(sample.timeframe, [symbol])
    fig = price_overview(feats, symbol, sample.timeframe)
    return save(fig, data_dir() / "charts" / f"demo_{symbol}_{sample.timeframe}.png")
