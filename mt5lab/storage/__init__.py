"""Offline storage behind one interface; the profile picks the implementation."""

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
