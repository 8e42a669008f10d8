"""Options that several verbs share, defined once: the timeframe choice, how bar files are read
(``--symbol``, ``--timeframe``, ``--format``, ``--server-tz``, ``--calendar`` of ``ingest`` and
``update``) and ``--now`` (a replay time with a zone)."""

from __future__ import annotations

from datetime import datetime

import click

from mt5lab.catalog import CALENDARS, TIMEFRAMES

TIMEFRAME = click.Choice(list(TIMEFRAMES), case_sensitive=False)
FORMATS = ("auto", "mt5", "csv", "parquet")


def calendar_option(default: str | None = "fx", help: str = "Market calendar for the gap report."):
    return click.option("--calendar", default=default, type=click.Choice(list(CALENDARS)),
                        show_default=default is not None, help=help)


FILE_CLOCK = ("The broker's server clock the file's times are on: NY+7 (New York + 7 h, most FX brokers), "
              "an IANA zone (Europe/Athens), UTC, or Etc/GMT-2 (= UTC+2: Etc signs are inverted). Required "
              "for MT5/MT4 exports and integer times unless MT5LAB_SERVER_TZ is set; generic tables with "
              "date-times default to UTC.")
GRID_CLOCK = ("The broker's server clock whose bar grid the stored bars are on (H4 and D1 are anchored at "
              "its midnight). Default: MT5LAB_SERVER_TZ, else UTC.")


def server_tz_option(help: str = FILE_CLOCK):
    return click.option("--server-tz", default=None, help=help)


def bar_file_options(*, timeframe_required: bool, timeframe_help: str, calendar_default: str | None,
                     calendar_help: str):
    """``--symbol --timeframe --format --server-tz --calendar``: how ``ingest`` and ``update`` read
    bar files (both pass them to :func:`mt5lab.bars.ingest.ingest_files` / ``read_files``)."""
    options = [
        click.option("--symbol", help="Symbol of the bars (required unless the file has a symbol column)."),
        click.option("--timeframe", type=TIMEFRAME, required=timeframe_required, help=timeframe_help),
        click.option("--format", "fmt", default="auto", type=click.Choice(list(FORMATS)),
                     help="Input format; auto picks by header and suffix."),
        server_tz_option(),
        calendar_option(calendar_default, calendar_help),
    ]

    def decorate(fn):
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


def parse_now(ctx, param, value: str | None) -> datetime | None:
    """``--now``: an ISO time with a zone (``Z`` or ``+00:00``); None when not given."""
    if value is None:
        return None
    try:
        now = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO time, e.g. 2024-01-06T12:00:00+00:00") from None
    if now.tzinfo is None or now.utcoffset() is None:
        raise click.BadParameter("needs a zone, e.g. 2024-01-06T12:00:00+00:00")
    return now


def now_option(help: str):
    return click.option("--now", default=None, callback=parse_now, help=help)


def engine_option():
    """``--engine local|spark`` (env ``MT5LAB_ENGINE``): where the batch work runs (README: Scaling out)."""
    return click.option("--engine", envvar="MT5LAB_ENGINE", default="local", show_default=True,
                        type=click.Choice(["local", "spark"], case_sensitive=False),
                        help="Batch engine: local, or spark on MT5LAB_SPARK_MASTER (default local[2]).")
