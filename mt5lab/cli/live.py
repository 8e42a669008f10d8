"""The live feed: ``follow`` (a MetaTrader 5 terminal, or a file replayed as if live, into the stores)."""

from __future__ import annotations

import sys
from datetime import timedelta

import click

from mt5lab.catalog import DEFAULT_TIMEFRAME
from mt5lab.cli.common import common
from mt5lab.cli.options import FILE_CLOCK, TIMEFRAME, calendar_option, now_option, server_tz_option


def _speed(ctx, param, value: str | None) -> float | None:
    if value is None or value.lower() in ("max", "0"):
        return None
    try:
        speed = float(value.lower().rstrip("x"))
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected a multiple of real time (60, 3600x) or max") from None
    if speed <= 0:
        raise click.BadParameter("must be positive (or max)")
    return speed


@click.command()
@click.option("--symbols", default=None, help="Comma-separated symbols (a replay: default every symbol in the file).")
@click.option("--timeframe", type=TIMEFRAME, default=DEFAULT_TIMEFRAME, show_default=True)
@click.option("--source", default="mt5", show_default=True,
              help="mt5 (MetaTrader5 package, Windows), mt5linux (terminal under Wine over RPyC) or "
                   "replay:PATH (any file ingest reads, played bar by bar).")
@server_tz_option(FILE_CLOCK + " A terminal whose tick time disagrees is refused.")
@click.option("--once", is_flag=True, help="One cycle: catch up everything closed by now, then exit (cron). "
              "Exit 1 if a symbol failed.")
@click.option("--speed", default=None, callback=_speed,
              help="Replay at this multiple of real time (e.g. 60); default max (as fast as possible).")
@now_option("Replay: the simulated start instant (ISO with zone); default where the store ends.")
@click.option("--grace", default=2.0, type=float, show_default=True,
              help="Seconds to wait after a bar's close before fetching it (terminal).")
@click.option("--history", default=1000, type=int, show_default=True,
              help="Bars to fetch for a symbol with nothing stored yet (terminal).")
@calendar_option(None, help="Market calendar for validation and scheduling (default: the symbols', else fx).")
@click.option("--host", default=None, help="mt5linux: RPyC host (default localhost).")
@click.option("--port", default=None, type=int, help="mt5linux: RPyC port (default 18812).")
@common
def follow(symbols, timeframe, source, server_tz, once, speed, now, grace, history, calendar, host, port,
           profile):
    """Follow a live feed: at every bar close, fetch the closed bars since each symbol's last stored
    bar and update the offline and online stores. Catches up after an outage; a failing symbol is
    retried with backoff while the others go on; SIGTERM/SIGINT stop it between bars."""
    from mt5lab.online.follow import follow as run

    api = None
    if source == "mt5linux" and (host or port):
        try:
            from mt5linux import MetaTrader5
        except ImportError:
            raise click.UsageError("source mt5linux: pip install mt5linux") from None
        api = MetaTrader5(**{k: v for k, v in (("host", host), ("port", port)) if v})
    res = run(symbols, timeframe=timeframe.upper(), source=source, profile=profile, server_tz=server_tz,
              once=once, speed=speed, start=now, grace=timedelta(seconds=grace), history=history,
              calendar=calendar, api=api, echo=lambda line: click.echo(line))
    click.echo(res.summary(), err=True)
    if once and res.failing:
        sys.exit(1)
