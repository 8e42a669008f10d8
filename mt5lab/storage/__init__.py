"""Offline storage behind one interface; the profile picks the implementation.

:mod:`.base` is the interface (bars and features in, point-in-time reads out, a writer lock);
:mod:`.local` the embedded default (Parquet under the data dir, atomic swaps); :mod:`.postgres` the
team store (PostgreSQL, TimescaleDB where available) with its layout (:mod:`.pg_schema`), COPY
(:mod:`.pg_copy`), upserts (:mod:`.pg_write`) and advisory locks (:mod:`.pg_lock`).

May import: the base modules only (catalog, errors, config, envsubst, progress).
Every stage above uses it.
"""

from __future__ import annotations

from mt5lab.storage.base import FEATURE_COLUMNS, OfflineStore, WriteResult

__all__ = ["FEATURE_COLUMNS", "OfflineStore", "WriteResult", "open_store"]


def open_store(profile=None) -> OfflineStore:
    """The offline store of a profile name (or a loaded :class:`mt5lab.config.Profile`)."""
    from mt5lab.config import Profile, data_dir, load_profile

    prof = profile if isinstance(profile, Profile) else load_profile(profile)
    if prof.name == "local":
        from mt5lab.storage.local import LocalStore

        return LocalStore(data_dir())
    from mt5lab.storage.postgres import PostgresStore

    return PostgresStore.from_profile(prof)
