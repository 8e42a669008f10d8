"""Research verbs: ``training-set`` (point-in-time, to Parquet), ``catalog`` and ``demo``."""

from __future__ import annotations

import json

import click

from mt5lab.catalog import DEFAULT_TIMEFRAME
from mt5lab.cli.common import common
from mt5lab.cli.options import TIMEFRAME, engine_option


@click.command("training-set")
@click.option("--entities", type=click.Path(dir_okay=False), help="Parquet/CSV with symbol, event_timestamp (tz-aware).")
@click.option("--symbols", help="Instead of --entities: comma-separated symbols; rows at their bar closes.")
@click.option("--start", help="With --symbols: first decision time (ISO; no offset means UTC).")
@click.option("--end", help="With --symbols: last decision time (ISO; no offset means UTC).")
@click.option("--timeframe", type=TIMEFRAME, default=DEFAULT_TIMEFRAME, show_default=True, help="Feature timeframe.")
@click.option("--every", default=1, show_default=True, type=int, help="With --symbols: every N-th bar close.")
@click.option("--features", multiple=True, help="Feature service (default mt5_v1) or view:feature refs.")
@click.option("--label", "labels", multiple=True, help="Label, e.g. fwd_return_5 or fwd_direction_5.")
@click.option("--full-feature-names", is_flag=True, help="Name columns view__feature (Feast's option).")
@click.option("--saved-dataset", help="Also register a Feast SavedDataset of this name (local profile).")
@click.option("--out", required=True, type=click.Path(), help="Output FILE.parquet (spark: a Parquet directory).")
@engine_option()
@common
def training_set(entities, symbols, start, end, timeframe, every, features, labels, full_feature_names,
                 saved_dataset, out, engine, profile):
    """Point-in-time training set (Feast semantics) to Parquet plus a manifest."""
    from mt5lab.training.files import run

    if engine.lower() == "spark":  # Feast's SparkOfflineStore; --entities: Parquet path or table name
        from mt5lab.spark import commands

        if symbols or saved_dataset:
            raise click.UsageError("--engine spark takes --entities (no --symbols, --saved-dataset)")
        return commands.training_set(entities, timeframe.upper(), features, full_feature_names, out, profile,
                                     click.echo, labels=labels)

    man = run(entities=entities, symbols=symbols, start=start, end=end, timeframe=timeframe.upper(),
              every=every, features=features, labels=labels, out=out, full_feature_names=full_feature_names,
              profile=profile, saved_dataset=saved_dataset)
    click.echo(f"{out}: {man['rows']['total']} rows, {len(man['features'])} features, "
               f"{len(man['labels'])} labels, {man['rows']['all_features_null']} rows without features; "
               f"{man['content_hash']}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def catalog(as_json):
    """Print the feature catalog (views, features, dtypes, definitions, warm-up)."""
    from mt5lab.catalog import as_records

    rows = as_records()
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    import pandas as pd

    with pd.option_context("display.max_rows", 100, "display.width", 200):
        click.echo(pd.DataFrame(rows).drop(columns=["description"]).to_string(index=False))


@click.command()
@common
def demo(profile):
    """Samples -> validate -> 42 features -> apply -> materialize -> online table + a PNG chart."""
    from mt5lab.cli import render
    from mt5lab.demo import run_demo
    from mt5lab.online.reader import reader

    res = run_demo(profile, echo=click.echo)
    now = res["now"]
    live = [c for tf, rows in res["online"].items()
            for c in render.columns(reader(profile, tf), rows, now, f" {tf}")]
    click.echo("\nOnline features (mt5_v1) read back from the online store, as of now:\n")
    click.echo(render.table(live))
    if any(c.rows.row_status()[c.index] != "fresh" for c in live) and res["replay"]:
        click.echo("\nThe samples are historical, so now their views are past the ttl and read as null "
                   "(Feast alone would return them as current).\nThe same read as of each sample's last "
                   "bar close (`mt5lab online SYMBOL --timeframe TF --now TIME`):\n")
        click.echo(render.table([c for tf, (at, rows) in res["replay"].items()
                                 for c in render.columns(reader(profile, tf), rows, at, f" {tf}")]))
