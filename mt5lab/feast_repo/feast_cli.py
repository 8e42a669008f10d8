"""What a ``feast`` CLI command on ``feature_repo/`` works on: one project, hence one timeframe.

Feast takes the project of every command (``plan``, ``apply``, ``feature-views list``, ``materialize``,
``ui``, ...) from the ``project:`` of the yaml it loaded, after ``os.path.expandvars``, and nothing in
a feature repo can change it (a ``Project`` object must carry the same name). The yaml cannot
compute ``mt5lab_h1`` from ``MT5LAB_TIMEFRAME=H1`` either: an unset variable stays literal text and
is not a valid project name. So, for Feast's CLI, **the project decides the timeframe**
(:func:`mt5lab.config.split_project`: ``mt5lab`` is D1, ``mt5lab_h1`` is H1), and the profile is
the one whose yaml Feast loaded. ``MT5LAB_TIMEFRAME`` / ``MT5LAB_PROFILE``, when set (environment or
``.env``), must name the same ones: otherwise the command stops with one line (``Error: ...``) before
it reads or writes the registry, instead of planning H1 sources into the D1 project.

``feature_repo/data_sources.py`` builds its source from :func:`repo_timeframe` and
:func:`repo_profile`; the local registry store calls :func:`check_feast_command` when Feast opens it,
which covers the commands that never import the repo's Python (list, describe, materialize, ...).
Outside a ``feast`` command (mt5lab's own code, notebooks) these read the variables, default D1 and
``local``, and check nothing.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from mt5lab.catalog import DEFAULT_TIMEFRAME, check_timeframe
from mt5lab.config import PROFILES, load_env, project_for, repo_path, split_project


@dataclass(frozen=True)
class FeastCommand:
    """The running ``feast`` command: its yaml file and the project Feast read from it."""

    yaml_file: Path
    project: str | None


def feast_command() -> FeastCommand | None:
    """The ``feast`` CLI command running in this thread, or None (not inside Feast's CLI).

    Feast's root command stores the yaml it loads in its click context (``FS_YAML_FILE``, from
    ``-c``/``-f``/``FEAST_FS_YAML_FILE_PATH``); the project is read from that file exactly as Feast
    does (``os.path.expandvars``, then YAML).
    """
    cli = sys.modules.get("feast.cli.cli")
    if cli is None:
        return None
    import click
    import yaml

    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return None
    root = ctx.find_root()
    if root.command is not getattr(cli, "cli", None) or not isinstance(root.obj, dict):
        return None
    yaml_file = root.obj.get("FS_YAML_FILE")
    if yaml_file is None:
        return None
    try:
        raw = yaml.safe_load(os.path.expandvars(Path(yaml_file).read_text()))
    except (OSError, yaml.YAMLError):
        return FeastCommand(Path(yaml_file), None)  # Feast reports an unreadable yaml itself
    project = raw.get("project") if isinstance(raw, dict) else None
    return FeastCommand(Path(yaml_file), project if isinstance(project, str) else None)


def _fail(message: str) -> NoReturn:
    import click

    raise click.ClickException(message)  # Feast's CLI is click: "Error: <message>", exit 1


def _env(var: str) -> str | None:
    load_env()
    return (os.environ.get(var) or "").strip() or None


def _chosen_timeframe(cmd: FeastCommand | None) -> str | None:
    value = _env("MT5LAB_TIMEFRAME")
    if value is None:
        return None
    try:
        return check_timeframe(value)
    except ValueError as exc:
        if cmd is None:
            raise
        _fail(f"MT5LAB_TIMEFRAME: {exc}")


def _command_timeframe(cmd: FeastCommand) -> str:
    """The timeframe of the command's project; a disagreeing ``MT5LAB_TIMEFRAME`` is an error."""
    if cmd.project is None:
        _fail(f"{cmd.yaml_file} names no Feast project")
    base, timeframe = split_project(cmd.project)
    chosen = _chosen_timeframe(cmd)
    if chosen is not None and chosen != timeframe:
        want = project_for(base, chosen)
        _fail(f"MT5LAB_TIMEFRAME={chosen} is Feast project {want!r}, but this feast command works on "
              f"project {cmd.project!r} ({timeframe}) from {cmd.yaml_file}, Feast's only source of the "
              f"project. Unset MT5LAB_TIMEFRAME for {timeframe}; for {chosen} use -f with a yaml whose "
              f"project is {want!r}, `mt5lab apply --timeframe {chosen}`, or "
              f"mt5lab.feature_store(timeframe={chosen!r})")
    return timeframe


def _yaml_profile(cmd: FeastCommand) -> str | None:
    """The mt5lab profile whose yaml the command loaded (None for a yaml of one's own)."""
    try:
        here = cmd.yaml_file.resolve().parent == repo_path().resolve()
    except OSError:
        return None
    names = {file: name for name, file in PROFILES.items()}
    return names.get(cmd.yaml_file.name) if here else None


def _command_profile(cmd: FeastCommand) -> str | None:
    loaded = _yaml_profile(cmd)
    chosen = _env("MT5LAB_PROFILE")
    if loaded is not None and chosen is not None and chosen.lower() != loaded:
        _fail(f"MT5LAB_PROFILE={chosen} but this feast command reads the {loaded!r} profile's "
              f"{cmd.yaml_file.name}; unset MT5LAB_PROFILE, or pass "
              f"-f {repo_path() / PROFILES.get(chosen.lower(), PROFILES['local'])}")
    return loaded


def _check_data_dir() -> None:
    value = _env("MT5LAB_DATA_DIR")
    if value is not None and not Path(value).is_absolute():
        _fail(f"MT5LAB_DATA_DIR={value} is a relative path: Feast resolves relative paths against "
              f"the feature repo and `feast apply` changes into it, so it would not be the directory "
              f"mt5lab uses. Use an absolute path (e.g. MT5LAB_DATA_DIR=$PWD/{value})")


def check_feast_command() -> None:
    """Inside a ``feast`` command: stop (one line, exit 1) on a timeframe, profile or data dir that
    disagrees with what the command works on. Elsewhere: nothing."""
    cmd = feast_command()
    if cmd is None:
        return
    _check_data_dir()
    _command_profile(cmd)
    _command_timeframe(cmd)


def repo_timeframe() -> str:
    """The timeframe ``feature_repo/*.py`` generate Feast objects for.

    Inside a ``feast`` command: the timeframe of its project (checked against ``MT5LAB_TIMEFRAME``).
    Elsewhere: ``MT5LAB_TIMEFRAME``, default D1.
    """
    cmd = feast_command()
    if cmd is None:
        return _chosen_timeframe(None) or DEFAULT_TIMEFRAME
    check_feast_command()
    return _command_timeframe(cmd)


def repo_profile() -> str | None:
    """The profile whose offline store ``feature_repo/*.py`` take their source from.

    Inside a ``feast`` command reading one of mt5lab's profile yamls: that profile (checked against
    ``MT5LAB_PROFILE``). Elsewhere: None, i.e. ``MT5LAB_PROFILE``, default ``local``.
    """
    cmd = feast_command()
    return None if cmd is None else _command_profile(cmd)
