"""The ``mt5lab`` command line: the click group and :func:`main` (the console script
``mt5lab = "mt5lab.cli:main"``; ``python -m mt5lab.cli`` runs it too).

The verbs live by concern: :mod:`.data` (ingest, update, build), :mod:`.store` (apply,
materialize, online, serve, ui, check freshness), :mod:`.research` (training-set, catalog, demo),
:mod:`.live` (follow, the live feed), :mod:`.model` (model evaluate, model train, predict).
:mod:`.common` is what every verb shares (``--profile``, ``--verbose``, one-line errors with exit
codes), :mod:`.options` the options several verbs share (bar-file reading with ``--server-tz`` and
``--calendar``, ``--now``), :mod:`.render` how an online read is printed (table and JSON).

May import: every stage and the base modules, and :mod:`mt5lab.demo` (an entry point like this
one), but not :mod:`mt5lab.testing`. No stage imports the command line. Heavy imports stay inside
the verbs, so ``mt5lab --help`` is fast.
"""

from __future__ import annotations

import click

from mt5lab.cli.data import build, ingest, update
from mt5lab.cli.live import follow
from mt5lab.cli.model import model, predict
from mt5lab.cli.research import catalog, demo, training_set
from mt5lab.cli.store import apply, check, materialize, online, serve, ui


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mt5lab")
def cli() -> None:
    """mt5lab: a Feast feature store for MetaTrader 5 research."""


for _command in (ingest, build, apply, materialize, online, catalog, demo, training_set, update, serve,
                 ui, check, follow, model, predict):
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="mt5lab")
