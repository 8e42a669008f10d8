"""``make demo`` / ``mt5lab demo``: samples in, 42 features out, online table printed, one PNG saved.

Idempotent: a second run finds the same bars and features and writes nothing.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mt5lab.bars.ingest import load_samples, write
from mt5lab.bars.samples import SAMPLES
from mt5lab.catalog import FEATURE_NAMES
from mt5lab.config import data_dir, resolve
from mt5lab.feast_repo.store import apply
from mt5lab.features.build import build
from mt5lab.online.feast_read import online_frame
from mt5lab.online.materialize import materialize
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
    tables = {}
    for tf in sorted({s.timeframe for s in SAMPLES.values()}):
        summary = apply(prof, tf)
        echo(f"apply {tf}: {summary['views']} views, {summary['features']} features, "
             f"{summary['services']} feature service")
        mat = materialize(store, prof, tf, progress=progress)
        echo(f"materialize {tf}: {mat.written} of {mat.symbols} symbols written to the online store")
        symbols = sorted(s.symbol for s in SAMPLES.values() if s.timeframe == tf)
        tables[tf] = online_frame(symbols, tf, prof)
    table = online_table(tables)
    echo("\nOnline features (mt5_v1) read back from the online store:\n")
    echo(table.to_string())
    chart = save_chart(store)
    echo(f"\nchart: {chart}")
    return {"ingest": ing.summary(), "online": table, "chart": chart}


def online_table(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Features as rows, ``SYMBOL TF`` as columns."""
    cols = {}
    for tf, df in tables.items():
        for _, row in df.iterrows():
            cols[f"{row['symbol']} {tf}"] = row.drop("symbol")
    return pd.DataFrame(cols).reindex(list(FEATURE_NAMES))


def save_chart(store, symbol: str = "GOOG") -> Path:
    from mt5lab.plots.base import price_overview, save

    sample = SAMPLES[symbol]
    feats = store.read_features(sample.timeframe, [symbol])
    fig = price_overview(feats, symbol, sample.timeframe)
    return save(fig, data_dir() / "charts" / f"demo_{symbol}_{sample.timeframe}.png")
