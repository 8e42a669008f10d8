"""Cross-process locks of the team profile: PostgreSQL advisory locks, each on its own connection.

``pg_advisory_lock`` is held by a database session, so a lock taken on a dedicated connection is
released when that connection closes, also when the process dies: no stale lock files. Keys are
``(LOCK_CLASS, objid)`` (see :mod:`mt5lab.storage.pg_schema`). The writer lock is re-entrant per
thread and server within a process, so code holding it may call code that takes it again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import contextmanager

from mt5lab.storage.pg_schema import LOCK_CLASS

_HELD: dict[tuple, int] = {}  # (server, thread) -> depth held by this process
_GUARD = threading.Lock()


@contextmanager
def advisory(connect: Callable, objid: int):
    """Block until ``(LOCK_CLASS, objid)`` is ours; release it (close the session) on exit."""
    conn = connect()
    try:
        conn.execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_CLASS, objid))
        try:
            yield
        finally:
            # Unlock explicitly: the server ends a closed session asynchronously, so a lock released
            # only by close() can still look held to the next taker for a few milliseconds.
            if not conn.closed:
                conn.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_CLASS, objid))
    finally:
        conn.close()  # a dead process or broken connection still releases: the session ends


@contextmanager
def reentrant(connect: Callable, server: tuple, objid: int):
    """:func:`advisory`, re-entrant per (server, thread) in this process."""
    key = (*server, objid, threading.get_ident())
    with _GUARD:
        depth = _HELD.get(key, 0)
        if depth:
            _HELD[key] = depth + 1
    if depth:
        try:
            yield
        finally:
            with _GUARD:
                _HELD[key] -= 1
        return
    with advisory(connect, objid):
        with _GUARD:
            _HELD[key] = 1
        try:
            yield
        finally:
            with _GUARD:
                del _HELD[key]
