"""The local profile's online store: Feast's SQLite store, with mt5lab's path resolution.

Feast's ``feast`` CLI reads ``online_store.path: ${MT5LAB_DATA_DIR}/online.db`` with
``os.path.expandvars``, which keeps an unset variable as literal text; Feast's SQLite store then
creates ``feature_repo/${MT5LAB_DATA_DIR}/online.db``. This config resolves the path with
:func:`mt5lab.config.expand_defaults` when Feast builds it (an unset variable is the default data dir,
the same one mt5lab uses) and then reports itself as ``type: sqlite``, so every Feast code path
(``feast apply``'s plan-based apply, the store's own path checks) treats it as Feast's SQLite store.
The store class is Feast's, unchanged. Selected in ``feature_repo/feature_store.yaml`` with
``online_store.type: mt5lab.feast_repo.sqlite_store.SqliteOnlineStore``.
"""

from __future__ import annotations

from typing import Literal

from feast.infra.online_stores import sqlite as feast_sqlite
from pydantic import field_validator

from mt5lab.config import expand_defaults

TYPE = "mt5lab.feast_repo.sqlite_store.SqliteOnlineStore"


class SqliteOnlineStoreConfig(feast_sqlite.SqliteOnlineStoreConfig):
    """Feast's ``SqliteOnlineStoreConfig`` whose ``path`` may hold ``${MT5LAB_DATA_DIR}``."""

    type: Literal["sqlite", "mt5lab.feast_repo.sqlite_store.SqliteOnlineStore"] = "sqlite"

    @field_validator("type")
    @classmethod
    def _feast_sqlite(cls, value: str) -> str:
        return "sqlite"

    @field_validator("path")
    @classmethod
    def _resolve(cls, value: str) -> str:
        return expand_defaults(value)


class SqliteOnlineStore(feast_sqlite.SqliteOnlineStore):
    """Feast's SQLite online store (Feast finds a store class next to its config class)."""
