"""Cross-process locks of the team profile: PostgreSQL advisory locks, each on its own connection.

``pg_advisory_lock`` is held by a database session, so a lock taken on a dedicated connection is
released when that connection closes, also when the process dies: no stale lock files. Keys are
``(LOCK_CLASS, objid)`` (see :mod:`mt5lab.storage.pg_schema`). The writer lock is re-entrant per
thread and server within a process, so code holding it may call code that takes it again.

After an explicit unlock the writer lock's connection is kept idle (one per server, lock and
process) and reused by the next taker: a long-running writer (``mt5lab follow``) then pays one round
trip per lock instead of a new backend (about 5 ms). A kept connection the server dropped (a restart,
an idle timeout) is replaced once, transparently.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable
from contextlib import contextmanager

import psycopg

from mt5lab.storage.pg_schema import LOCK_CLASS

_HELD: dict[tuple, int] = {}  # (server, thread) -> depth held by this process
_IDLE: dict[tuple, psycopg.Connection] = {}  # (server, objid, pid) -> a kept, unlocked connection
_GUARD = threading.Lock()


@atexit.register
def close_idle() -> None:
    """Close every kept lock session this process opened (registered to run at exit)."""
    pid = os.getpid()
    with _GUARD:
        mine = [k for k in _IDLE if k[-1] == pid]
        conns = [_IDLE.pop(k) for k in mine]
    for conn in conns:
        conn.close()


def _forget_after_fork() -> None:
    """In a forked child: the parent's kept sessions are the parent's (closing one would end the
    parent's lock on the server): drop the references, never close them; a fresh guard, since the
    parent's may have been held by another thread at the fork."""
    global _GUARD
    _GUARD = threading.Lock()
    _IDLE.clear()
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def _take(key: tuple | None) -> psycopg.Connection | None:
    if key is None:
        return None
    with _GUARD:
        conn = _IDLE.pop(key, None)
    return None if conn is None or conn.closed or conn.broken else conn


def _keep(key: tuple | None, conn: psycopg.Connection) -> None:
    if key is not None and not conn.closed and not conn.broken:
        with _GUARD:
            if key not in _IDLE:
                _IDLE[key] = conn
                return
    conn.close()


@contextmanager
def advisory(connect: Callable, objid: int, idle_key: tuple | None = None):
    """Block until ``(LOCK_CLASS, objid)`` is ours; release it on exit. Without ``idle_key`` the
    session is closed after the unlock; with one it is kept for the next taker of that key."""
    key = None if idle_key is None else (*idle_key, objid, os.getpid())
    conn = _take(key)
    try:
        if conn is not None:
            try:
                conn.execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_CLASS, objid))
            except psycopg.OperationalError:  # the server dropped the kept session: a new one
                conn.close()
                conn = None
        if conn is None:
            conn = connect()
            conn.execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_CLASS, objid))
        unlocked = False
        try:
            yield
        finally:
            # Unlock explicitly: the server ends a closed session asynchronously, so a lock released
            # only by close() can still look held to the next taker for a few milliseconds.
            if not conn.closed:
                conn.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_CLASS, objid))
                unlocked = True
    except BaseException:
        if conn is not None:
            conn.close()  # a dead process or broken connection still releases: the session ends
        raise
    if unlocked:
        _keep(key, conn)
    else:
        conn.close()


@contextmanager
def reentrant(connect: Callable, server: tuple, objid: int, idle_key: tuple | None = None):
    """:func:`advisory`, re-entrant per (server, thread) in this process; ``idle_key`` (the server
    and the credentials a session is opened with) keeps the session between takers."""
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
    with advisory(connect, objid, idle_key=idle_key):
        with _GUARD:
            _HELD[key] = 1
        try:
            yield
        finally:
            with _GUARD:
                del _HELD[key]
