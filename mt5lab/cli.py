"""The ``mt5lab`` command line. Errors are one line on stderr (``--verbose`` adds the traceback),
secrets are redacted from everything printed, and the exit code is non-zero on failure."""

from __future__ import annotations

import functools
import json
import logging
import sys
import traceback

import click

from mt5lab.catalog import DEFAULT_TIMEFRAME, TIMEFRAMES
from mt5lab.errors import Mt5LabError, install_log_redaction, redact

_TF = click.Choice(list(TIMEFRAMES), case_sensitive=False)


def common(fn):
    """``--profile`` and ``--verbose`` on every verb, and the one-line error contract."""

    @click.option("--profile", envvar="MT5LAB_PROFILE", default=None,
                  help="Store profile: local (default) or postgres. Env: MT5LAB_PROFILE.")
    @click.option("-v", "--verbose", is_flag=True, help="Show tracebacks and debug logs.")
    @functools.wraps(fn)
    def wrapper(*args, profile=None, verbose=False, **kwargs):
        logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                            format="%(levelname)s %(name)s: %(message)s")
        install_log_redaction()
        if not verbose:  # psycopg warns about a COPY it could not end after a lost connection; the
            logging.getLogger("psycopg").setLevel(logging.ERROR)  # error line below says it all
        try:
            return fn(*args, profile=profile, **kwargs)
        except click.exceptions.Exit:
            raise
        except click.ClickException:
            raise
        except Mt5LabError as exc:
            _fail(exc, verbose, exc.exit_code)
        except Exception as exc:
            from mt5lab.errors import translate

            if (err := translate(exc, _resolved(profile))) is not None:  # Redis/PostgreSQL auth, connection
                _fail(err, verbose, err.exit_code)
            _fail(exc, verbose, 1, prefix=f"{type(exc).__name__}: ")

    return wrapper


def _fail(exc: BaseException, verbose: bool, code: int, prefix: str = "") -> None:
    if verbose:
        click.echo(redact("".join(traceback.format_exception(exc))), err=True)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    click.echo(redact(f"error: {prefix}{first}"), err=True)
    sys.exit(code)


def _resolved(profile):
    """The loaded profile for an error message, or None when the profile itself cannot load."""
    from mt5lab.config import resolve

    try:
        return resolve(profile)
    except Exception:
        return None


def _store(profile):
    from mt5lab.storage import open_store

    return open_store(profile)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mt5lab")
def cli() -> None:
    """mt5lab: a Feast feature store for MetaTrader 5 research."""


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--sample", "samples", multiple=True, is_flag=False, flag_value="ALL",
              help="Ingest a bundled real sample (GOOG D1, EURUSD H1); alone: all of them.")
@click.option("--symbol", help="Symbol of the bars (required unless the file has a symbol column).")
@click.option("--timeframe", type=_TF, help="Timeframe of the bars (M1 M5 M15 M30 H1 H4 D1 W1).")
@click.option("--format", "fmt", default="auto", type=click.Choice(["auto", "mt5", "csv", "parquet"]),
              help="Input format; auto picks by header and suffix.")
@click.option("--server-tz", default="UTC", show_default=True,
              help="IANA zone of the broker server times in the file (e.g. Etc/GMT-2, Europe/Athens).")
@click.option("--calendar", default="fx", type=click.Choice(["fx", "equity", "24x7"]),
              show_default=True, help="Market calendar for the gap report.")
@common
def ingest(paths, samples, symbol, timeframe, fmt, server_tz, calendar, profile):
    """Validate bar files and upsert them into the offline store (all or nothing)."""
    from mt5lab.bars.ingest import load_samples, write

    if not paths and not samples:
        raise click.UsageError("give bar files, or --sample")
    if paths and not timeframe:
        raise click.UsageError("--timeframe is required for bar files")
    store = _store(profile)
    if samples:
        names = None if "ALL" in samples else [s.upper() for s in samples]
        bars, reports = load_samples(names)
        res = write(store, bars, reports)
    else:  # streamed in batches (bounded memory), validated whole, then one write (mt5lab.bars.staging)
        from mt5lab.bars.ingest import ingest_files

        res = ingest_files(store, paths, symbol=symbol, timeframe=timeframe.upper(), format=fmt,
                           server_tz=server_tz, calendar=calendar)
        reports = res.reports
    for rep in reports:
        s = rep.summary()
        click.echo(f"{s.get('source', '')}: {s['rows']} rows, {s['gaps']} gaps "
                   f"({s['missing_bars']} missing bars), {s['suspicious']} suspicious")
    click.echo(f"ingested {res.rows} bars: {res.write.inserted} new, {res.write.updated} revised, "
               f"{res.write.unchanged} unchanged")


@cli.command()
@click.option("--timeframe", "timeframes", type=_TF, multiple=True, help="Default: every stored timeframe.")
@click.option("--symbol", "symbols", multiple=True, help="Default: every symbol.")
@common
def build(timeframes, symbols, profile):
    """Compute the 42 features from stored bars (full rebuild; unchanged rows untouched)."""
    from mt5lab.features.build import build as run

    res = run(_store(profile), [t.upper() for t in timeframes] or None, list(symbols) or None)
    for tf, r in res.items():
        click.echo(f"{tf}: {r.inserted} new, {r.updated} revised, {r.unchanged} unchanged feature rows")


def _timeframes(store, given) -> list[str]:
    return [t.upper() for t in given] or sorted(set(store.timeframes()) | {DEFAULT_TIMEFRAME})


@cli.command()
@click.option("--timeframe", "timeframes", type=_TF, multiple=True,
              help="Default: D1 plus every stored timeframe.")
@common
def apply(timeframes, profile):
    """Register the entity, six views and mt5_v1 in Feast (one project per timeframe)."""
    from mt5lab.feast_repo.store import apply as run

    for tf in _timeframes(_store(profile), timeframes):
        s = run(profile, tf)
        click.echo(f"{tf}: {s['views']} views, {s['features']} features, {s['services']} feature service")


@cli.command()
@click.option("--timeframe", "timeframes", type=_TF, multiple=True, help="Default: every stored timeframe.")
@click.option("--full", is_flag=True, help="Rewrite every symbol, not only those that changed.")
@common
def materialize(timeframes, full, profile):
    """Write each symbol's latest features to the online store (since last time by default)."""
    from mt5lab.online.materialize import materialize as run

    store = _store(profile)
    for tf in [t.upper() for t in timeframes] or store.timeframes():
        r = run(store, profile, tf, full=full)
        click.echo(f"{tf}: {r.written} of {r.symbols} symbols written (latest bar close {r.latest_event})")


@cli.command()
@click.argument("symbols", nargs=-1, required=True)
@click.option("--timeframe", type=_TF, default=DEFAULT_TIMEFRAME, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@common
def online(symbols, timeframe, as_json, profile):
    """Read the 42 online features of SYMBOLS."""
    from mt5lab.online.feast_read import online_frame

    df = online_frame(list(symbols), timeframe.upper(), profile)
    if as_json:
        click.echo(df.to_json(orient="records", date_format="iso"))
    else:
        click.echo(df.set_index("symbol").T.to_string())


@cli.command()
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


@cli.command()
@common
def demo(profile):
    """Samples -> validate -> 42 features -> apply -> materialize -> online table + a PNG chart."""
    from mt5lab.demo import run_demo

    run_demo(profile, echo=click.echo)


@cli.command("training-set")
@click.option("--entities", type=click.Path(dir_okay=False), help="Parquet/CSV with symbol, event_timestamp (tz-aware).")
@click.option("--symbols", help="Instead of --entities: comma-separated symbols; rows at their bar closes.")
@click.option("--start", help="With --symbols: first decision time (ISO; no offset means UTC).")
@click.option("--end", help="With --symbols: last decision time (ISO; no offset means UTC).")
@click.option("--timeframe", type=_TF, default=DEFAULT_TIMEFRAME, show_default=True, help="Feature timeframe.")
@click.option("--every", default=1, show_default=True, type=int, help="With --symbols: every N-th bar close.")
@click.option("--features", multiple=True, help="Feature service (default mt5_v1) or view:feature refs.")
@click.option("--label", "labels", multiple=True, help="Label, e.g. fwd_return_5 or fwd_direction_5.")
@click.option("--full-feature-names", is_flag=True, help="Name columns view__feature (Feast's option).")
@click.option("--saved-dataset", help="Also register a Feast SavedDataset of this name (local profile).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output FILE.parquet.")
@common
def training_set(entities, symbols, start, end, timeframe, every, features, labels, full_feature_names,
                 saved_dataset, out, profile):
    """Point-in-time training set (Feast semantics) to Parquet plus a manifest."""
    from mt5lab.training.files import run

    man = run(entities=entities, symbols=symbols, start=start, end=end, timeframe=timeframe.upper(),
              every=every, features=features, labels=labels, out=out, full_feature_names=full_feature_names,
              profile=profile, saved_dataset=saved_dataset)
    click.echo(f"{out}: {man['rows']['total']} rows, {len(man['features'])} features, "
               f"{len(man['labels'])} labels, {man['rows']['all_features_null']} rows without features; "
               f"{man['content_hash']}")


# -- hot path: update, serve, check freshness (mt5lab.update, mt5lab.online.server, mt5lab.freshness) ------
@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--symbol", help="Symbol of the bars (required unless the file has a symbol column).")
@click.option("--timeframe", type=_TF, required=True, help="Timeframe of the bars.")
@click.option("--format", "fmt", default="auto", type=click.Choice(["auto", "mt5", "csv", "parquet"]),
              help="Input format; auto picks by header and suffix.")
@click.option("--server-tz", default="UTC", show_default=True,
              help="IANA zone of the broker server times in the file (e.g. Etc/GMT-2, Europe/Athens).")
@click.option("--calendar", default=None, type=click.Choice(["fx", "equity", "24x7"]),
              help="Market calendar for the gap report (default: the sample's, else fx).")
@click.option("--offline-only", is_flag=True, help="Do not write the online store.")
@common
def update(paths, symbol, timeframe, fmt, server_tz, calendar, offline_only, profile):
    """Add new bars incrementally: features from the last W stored bars, offline + online in one step."""
    from mt5lab.bars.ingest import read_files
    from mt5lab.online.update import update as run

    bars, _ = read_files(paths, symbol=symbol, timeframe=timeframe.upper(), format=fmt,
                          server_tz=server_tz, calendar=calendar or "fx")
    res = run(bars, profile=profile, timeframe=timeframe.upper(), calendar=calendar,
              source=paths[0] if len(paths) == 1 else "<inputs>", online=not offline_only)
    click.echo(res.summary())


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to bind. Loopback unless given explicitly (the server has no auth).")
@click.option("--port", default=6566, type=int, show_default=True)
@click.option("--timeframe", type=_TF, default=DEFAULT_TIMEFRAME, show_default=True,
              help="Timeframe (Feast project) to serve.")
@click.option("--workers", default=2, type=int, show_default=True, help="gunicorn worker processes.")
@click.option("--feast-handler", is_flag=True,
              help="Answer /get-online-features with Feast's own handler (slower, ignores ttl).")
@common
def serve(host, port, timeframe, workers, feast_handler, profile):
    """Run Feast's HTTP feature server (/get-online-features, /health) on the profile's config."""
    from mt5lab.online.server import serve as run

    run(profile, host=host, port=port, timeframe=timeframe.upper(), workers=workers,
        feast_handler=feast_handler, echo=click.echo)


@cli.group()
def check() -> None:
    """Checks for schedulers: print a report, exit non-zero on a problem."""


@check.command("freshness")
@click.option("--timeframe", "timeframes", type=_TF, multiple=True, help="Default: every stored timeframe.")
@click.option("--symbol", "symbols", multiple=True, help="Default: every symbol with features.")
@click.option("--calendar", default="fx", show_default=True, type=click.Choice(["fx", "equity", "24x7"]),
              help="Calendar of symbols that are not bundled samples.")
@click.option("--grace", default=None, help="Arrival delay allowed after a bar's close, e.g. 90s, 5m, 1h "
              "(default: half a bar, at most 15m).")
@click.option("--now", "now_iso", default=None, help="Check as of this ISO time with zone (replays).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@common
def check_freshness(timeframes, symbols, calendar, grace, now_iso, as_json, profile):
    """Age of each online value against its timeframe's cadence (calendar-aware); exit 1 if any is
    stale, expired, future or missing."""
    from datetime import datetime, timedelta

    from mt5lab.online.freshness import freshness, problems

    now = None
    if now_iso:
        now = datetime.fromisoformat(now_iso)
        if now.tzinfo is None:
            raise click.BadParameter("needs a zone, e.g. 2024-01-06T12:00:00+00:00", param_hint="--now")
    gr = None
    if grace:
        units = {"s": "seconds", "m": "minutes", "h": "hours"}
        if grace[-1:] not in units or not grace[:-1].replace(".", "", 1).isdigit():
            raise click.BadParameter("expected e.g. 90s, 5m or 1h", param_hint="--grace")
        gr = timedelta(**{units[grace[-1]]: float(grace[:-1])})
    df = freshness(list(symbols) or None, profile=profile, timeframes=[t.upper() for t in timeframes] or None,
                   now=now, grace=gr, default_calendar=calendar)
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


def main() -> None:
    cli(prog_name="mt5lab")


if __name__ == "__main__":  # pragma: no cover
    main()
