"""Bars in and features out: ``ingest``, ``update`` (the incremental hot path) and ``build``."""

from __future__ import annotations

import click

from mt5lab.cli.common import common, open_offline
from mt5lab.cli.options import TIMEFRAME, bar_file_options, engine_option


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--sample", "samples", multiple=True, is_flag=False, flag_value="ALL",
              help="Ingest a bundled real sample (GOOG D1, EURUSD H1); alone: all of them.")
@bar_file_options(timeframe_required=False, timeframe_help="Timeframe of the bars (M1 M5 M15 M30 H1 H4 D1 W1).",
                  calendar_default="fx", calendar_help="Market calendar for the gap report.")
@common
def ingest(paths, samples, symbol, timeframe, fmt, server_tz, calendar, profile):
    """Validate bar files and upsert them into the offline store (all or nothing)."""
    from mt5lab.bars.ingest import ingest_files, load_samples, write
    from mt5lab.bars.samples import SAMPLES

    if not paths and not samples:
        raise click.UsageError("give bar files, or --sample")
    if paths and not timeframe:
        raise click.UsageError("--timeframe is required for bar files")
    store = open_offline(profile)
    if samples:
        names = list(SAMPLES) if "ALL" in samples else [s.upper() for s in samples]
        bars, reports = load_samples(names)
        res = write(store, bars, reports)
        sources = [f"sample:{n}" for n in names]  # load_samples: one report per name, in order
    else:  # streamed in batches (bounded memory), validated whole, then one write (mt5lab.bars.staging)
        res = ingest_files(store, paths, symbol=symbol, timeframe=timeframe.upper(), format=fmt,
                           server_tz=server_tz, calendar=calendar)
        reports = res.reports  # one per file, in the order given
        sources = [str(p) for p in paths]
    for source, rep in zip(sources, reports, strict=True):
        s = rep.summary()
        click.echo(f"{source}: {s['rows']} rows, {s['gaps']} gaps "
                   f"({s['missing_bars']} missing bars), {s['suspicious']} suspicious")
    click.echo(f"ingested {res.rows} bars: {res.write.inserted} new, {res.write.updated} revised, "
               f"{res.write.unchanged} unchanged")


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=False))
@bar_file_options(timeframe_required=True, timeframe_help="Timeframe of the bars.", calendar_default=None,
                  calendar_help="Market calendar for the gap report (default: the sample's, else fx).")
@click.option("--offline-only", is_flag=True, help="Do not write the online store.")
@common
def update(paths, symbol, timeframe, fmt, server_tz, calendar, offline_only, profile):
    """Add new bars incrementally: features from the last W stored bars, offline + online in one step."""
    from mt5lab.bars.ingest import read_files
    from mt5lab.online.update import update as run

    bars, reports = read_files(paths, symbol=symbol, timeframe=timeframe.upper(), format=fmt,
                               server_tz=server_tz, calendar=calendar or "fx")
    grid = reports[0].server_tz if reports else server_tz  # the clock the files were read on
    res = run(bars, profile=profile, timeframe=timeframe.upper(), calendar=calendar, server_tz=grid,
              source=paths[0] if len(paths) == 1 else "<inputs>", online=not offline_only)
    click.echo(res.summary())


@click.command()
@click.option("--timeframe", "timeframes", type=TIMEFRAME, multiple=True, help="Default: every stored timeframe.")
@click.option("--symbol", "symbols", multiple=True, help="Default: every symbol.")
@engine_option()
@common
def build(timeframes, symbols, engine, profile):
    """Compute the 42 features from stored bars (full rebuild; unchanged rows untouched)."""
    from mt5lab.features.build import build as run

    if engine.lower() == "spark":  # the Spark engine's dataset (mt5lab.spark.build)
        from mt5lab.spark import commands

        return commands.build([t.upper() for t in timeframes] or None, list(symbols) or None, click.echo)

    res = run(open_offline(profile), [t.upper() for t in timeframes] or None, list(symbols) or None)
    for tf, r in res.items():
        click.echo(f"{tf}: {r.inserted} new, {r.updated} revised, {r.unchanged} unchanged feature rows")
