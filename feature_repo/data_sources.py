"""The batch source of the active profile (MT5LAB_PROFILE) and timeframe (MT5LAB_TIMEFRAME, default D1).

Local profile: a Parquet file under the data dir. Postgres profile: a PostgreSQLSource over
``features.<tf>``. Both are written by mt5lab, never by Feast.
"""

import os

from mt5lab.storage import open_store

TIMEFRAME = os.environ.get("MT5LAB_TIMEFRAME", "D1")
features_source = open_store().feast_source(TIMEFRAME)
