"""Which store a notebook reads, and what it holds: the first line every notebook prints.

A notebook opened from JupyterLab runs in ``notebooks/``, papermill in any directory, ``make report``
in the report directory: all of them must read the store the ``mt5lab`` CLI writes. The rule
(:func:`resolve_data_dir`): the ``data_dir`` parameter if given, else ``MT5LAB_DATA_DIR`` (environment,
then ``.env``), else the checkout's ``data/``; a relative path is taken against the checkout (the
directory holding ``feature_repo/``), never against the current directory.

:func:`describe` names the store in one line (profile, data directory or database; never a secret)
and lists, per timeframe, the symbols that have feature rows, with their latest bar close (UTC).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd


def checkout_path(path: str | Path) -> Path:
    """``path`` made absolute: ``~`` expanded, a relative path taken against the checkout."""
    from mt5lab.config import project_root

    p = Path(path).expanduser()
    return (p if p.is_absolute() else project_root() / p).resolve()


def resolve_data_dir(data_dir: str = "") -> Path:
    """The local data directory a notebook uses (see the module docstring). Sets nothing."""
    from mt5lab.config import load_env, project_root

    load_env()
    chosen = data_dir or os.environ.get("MT5LAB_DATA_DIR", "")
    return checkout_path(chosen) if chosen else (project_root() / "data").resolve()


def location(profile) -> str:
    """Where the profile's store is: the data dir (local) or the database (team); no secret."""
    from mt5lab.config import data_dir

    if profile.name == "local":
        return f"data dir {data_dir()}"
    off = profile.raw.get("offline_store", {})
    return (f"database {off.get('database')} on {off.get('host')}:{off.get('port')} "
            f"(user {off.get('user')}), data dir {data_dir()}")


def store_contents(store) -> pd.DataFrame:
    """One row per (timeframe, symbol) with feature rows: bars stored for the timeframe and the
    symbol's latest bar close (``event_timestamp``, UTC). Empty frame for an empty store."""
    counts = store.counts()
    rows = []
    for tf in store.timeframes():
        latest = store.latest_features(tf)
        syms = dict(zip(latest["symbol"].to_list(), latest["event_timestamp"].to_list(), strict=True)) \
            if latest.height else {}
        if not syms:
            rows.append({"timeframe": tf, "symbol": "(bars only: run mt5lab build)", "latest close (UTC)": None,
                         "bars in timeframe": counts.get(f"bars_{tf.lower()}", 0)})
        for sym in sorted(syms):
            rows.append({"timeframe": tf, "symbol": sym, "latest close (UTC)": syms[sym],
                         "bars in timeframe": counts.get(f"bars_{tf.lower()}", 0)})
    return pd.DataFrame(rows, columns=["timeframe", "symbol", "latest close (UTC)", "bars in timeframe"])


def holdings(contents: pd.DataFrame) -> dict[str, list[str]]:
    """``{timeframe: [symbols]}`` of :func:`store_contents`."""
    return {tf: list(g["symbol"]) for tf, g in contents.groupby("timeframe", sort=True)}


def describe(profile, contents: pd.DataFrame) -> str:
    """``store: <profile> profile, <location> · D1: GOOG, EURUSD · H1: EURUSD`` (one line)."""
    head = f"store: {profile.name} profile, {location(profile)}"
    if contents.empty:
        return (f"{head} · empty: load the bundled samples with -p samples True (or `mt5lab ingest "
                f"--sample`), or ingest your bars with `mt5lab ingest FILE ...`")
    parts = [f"{tf}: {', '.join(syms)}" for tf, syms in holdings(contents).items()]
    return " · ".join([head, *parts])
