"""Feast and the online store: ``apply``, ``materialize``, ``online``, ``serve`` and ``check freshness``."""

from __future__ import annotations

import sys

import click

from mt5lab.catalog import DEFAULT_TIMEFRAME
from mt5lab.cli.common import common, open_offline
from mt5lab.cli.options import (
    GRID_CLOCK,
    TIMEFRAME,
    calendar_option,
    engine_option,
    now_option,
    server_tz_option,
)


def _timeframes(store, given) -> list[str]:
    return [t.upper() for t in given] or sorted(set(store.timeframes()) | {DEFAULT_TIMEFRAME})


@click.command()
@click.option("--timeframe", "timeframes", type=TIMEFRAME, multiple=True,
              help="Default: D1 plus every stored timeframe.")
@common
def apply(timeframes, profile):
    """Register the entity, six views and mt5_v1 in Feast (one project per timeframe)."""
    from mt5lab.feast_repo.store import apply as run

    for tf in _timeframes(open_offline(profile), timeframes):
        s = run(profile, tf)
        click.echo(f"{tf}: {s['views']} views, {s['features']} features, {s['services']} feature service")


@click.command()
@click.option("--timeframe", "timeframes", type=TIMEFRAME, multiple=True, help="Default: every stored timeframe.")
@click.option("--full", is_flag=True, help="Rewrite every symbol, not only those that changed.")
@engine_option()
@common
def materialize(timeframes, full, engine, profile):
    """Write each symbol's latest features to the online store (since last time by default)."""
    from mt5lab.online.materialize import materialize as run

    if engine.lower() == "spark":  # Feast's spark.engine into Redis (mt5lab.spark.materialize)
        from mt5lab.spark import commands

        return commands.materialize([t.upper() for t in timeframes] or None, profile, click.echo)

    store = open_offline(profile)
    for tf in [t.upper() for t in timeframes] or store.timeframes():
        r = run(store, profile, tf, full=full)
        click.echo(f"{tf}: {r.written} of {r.symbols} symbols written (latest bar close {r.latest_event})")


@click.command()
@click.argument("symbols", nargs=-1, required=True)
@click.option("--timeframe", type=TIMEFRAME, default=DEFAULT_TIMEFRAME, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@now_option("Read as of this ISO time with zone (replays); default: the current time.")
@common
def online(symbols, timeframe, as_json, now, profile):
    """Read the 42 online features of SYMBOLS, with each view's event time and status (fresh,
    expired, future, missing). Values older than the view's ttl, or after --now, print as null."""
    from datetime import UTC, datetime

    from mt5lab.cli import render
    from mt5lab.online.reader import reader

    now = now or datetime.now(UTC)
    read = reader(profile, timeframe.upper())
    rows = read.read(list(symbols), now)
    if as_json:
        click.echo(render.to_json(rows))
    else:
        click.echo(render.table(render.columns(read, rows, now)))


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to bind. Loopback unless given explicitly (the server has no auth).")
@click.option("--port", default=6566, type=int, show_default=True)
@click.option("--timeframe", type=TIMEFRAME, default=DEFAULT_TIMEFRAME, show_default=True,
              help="Timeframe (Feast project) to serve.")
@click.option("--workers", default=2, type=int, show_default=True, help="gunicorn worker processes.")
@click.option("--feast-handler", is_flag=True,
              help="Answer /get-online-features with Feast's own handler (slower, ignores ttl).")
@click.option("--model", "model_dir", type=click.Path(file_okay=False), default=None,
              help="Also serve POST /predict with the model saved in this directory (`mt5lab model train`).")
@common
def serve(host, port, timeframe, workers, feast_handler, model_dir, profile):
    """Run Feast's HTTP feature server (/get-online-features, /health) on the profile's config."""
    from mt5lab.online.server import serve as run

    extra = []
    if model_dir:
        from functools import partial

        from mt5lab.model import artifact, http

        artifact.load(model_dir, profile=profile)  # a mismatched contract: refused before starting
        extra.append(partial(http.install, model_dir=model_dir, profile=profile))
    run(profile, host=host, port=port, timeframe=timeframe.upper(), workers=workers,
        feast_handler=feast_handler, extra_routes=extra, echo=click.echo)


@click.command()
@click.option("--port", default=8888, type=int, show_default=True)
@click.option("--timeframe", type=TIMEFRAME, default=DEFAULT_TIMEFRAME, show_default=True,
              help="Timeframe (Feast project) the page opens on; every applied one is in the selector.")
@common
def ui(port, timeframe, profile):
    """Feast's web UI (the server `feast ui` runs) on 127.0.0.1 only, on the profile's store.

    The store comes from mt5lab's setup (variables from the environment or .env, secrets in memory),
    so it works for the postgres profile and without exported variables. Ctrl-C stops it.
    """
    from mt5lab.config import data_dir, profile_name
    from mt5lab.feast_repo.store import feature_store

    name = profile_name(profile)
    fs = feature_store(name, timeframe.upper())
    click.echo(f"Feast UI (profile {name}, timeframe {timeframe.upper()}, data dir {data_dir()}): "
               f"http://127.0.0.1:{port}/p/{fs.project}/feature-view/")
    fs.serve_ui(host="127.0.0.1", port=port)  # loopback: Feast's UI server has no login


@click.group()
def check() -> None:
    """Checks for schedulers: print a report, exit non-zero on a problem."""


@check.command("freshness")
@click.option("--timeframe", "timeframes", type=TIMEFRAME, multiple=True, help="Default: every stored timeframe.")
@click.option("--symbol", "symbols", multiple=True, help="Default: every symbol with features.")
@calendar_option("fx", help="Calendar of symbols that are not bundled samples.")
@click.option("--grace", default=None, help="Arrival delay allowed after a bar's close, e.g. 90s, 5m, 1h "
              "(default: half a bar, at most 15m).")
@now_option("Check as of this ISO time with zone (replays).")
@server_tz_option(GRID_CLOCK)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@common
def check_freshness(timeframes, symbols, calendar, grace, now, server_tz, as_json, profile):
    """Age of each online value against its timeframe's cadence (calendar-aware); exit 1 if any is
    stale, expired, future or missing."""
    from datetime import timedelta

    from mt5lab.online.freshness import freshness, problems

    gr = None
    if grace:
        units = {"s": "seconds", "m": "minutes", "h": "hours"}
        if grace[-1:] not in units or not grace[:-1].replace(".", "", 1).isdigit():
            raise click.BadParameter("expected e.g. 90s, 5m or 1h", param_hint="--grace")
        gr = timedelta(**{units[grace[-1]]: float(grace[:-1])})
    df = freshness(list(symbols) or None, profile=profile, timeframes=[t.upper() for t in timeframes] or None,
                   now=now, grace=gr, default_calendar=calendar, server_tz=server_tz)
    bad = problems(df)
    if as_json:
        click.echo(df.to_json(orient="records", date_format="iso"))
    elif df.empty:
        click.echo("no symbols to check")
    else:
        click.echo(df.drop(columns=["ttl"]).to_string(index=False))
    if df.empty or len(bad):
        counts = bad["status"].value_counts().to_dict()
        click.echo(f"freshness: {len(bad)} of {len(df)} problems {counts}" if len(df)
                   else "freshness: nothing to check", err=True)
        sys.exit(1)
