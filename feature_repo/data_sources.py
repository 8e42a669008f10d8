"""The batch source of the Feast project this repo is applied to.

Under the ``feast`` CLI the project in the loaded yaml decides: ``mt5lab`` is D1, ``mt5lab_h1`` is
H1, and the profile is the one whose yaml Feast read; ``MT5LAB_TIMEFRAME`` / ``MT5LAB_PROFILE``, if
set, must agree, or the command stops with one line (:mod:`mt5lab.feast_repo.feast_cli`). Local
profile: a Parquet file under the data dir. Postgres profile: a PostgreSQLSource over
``features.<tf>``. Both are written by mt5lab, never by Feast.
"""

from mt5lab.feast_repo.feast_cli import repo_profile, repo_timeframe
from mt5lab.storage import open_store

TIMEFRAME = repo_timeframe()
features_source = open_store(repo_profile()).feast_source(TIMEFRAME)
