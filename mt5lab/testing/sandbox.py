"""Throwaway services for tests and benchmarks: a Redis server on a free port, a fresh PostgreSQL
database, and the team ("postgres") profile's environment pointing at both.

Nothing here touches the machine's own Redis data or existing databases: the Redis server is a new
process on a free loopback port (its config, password included, goes in through stdin, never argv
or disk), the database is created with a random name and dropped on exit.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_process(*args: str, timeout: float = 180.0) -> Iterator[tuple[int, subprocess.Popen]]:
    """``mt5lab serve ARGS`` on a free loopback port, in the current environment, yielding
    ``(port, process)`` once ``/health`` answers 200; terminated on exit. A server that exits or
    stays unhealthy past ``timeout`` raises RuntimeError with the end of its output. Output goes to
    a temporary file, not a pipe, so a server under long load never blocks on a full pipe."""
    import sys
    import tempfile
    import urllib.request

    port = free_port()
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, "-m", "mt5lab.cli", "serve", "--port", str(port), *args],
                            env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT)

    def tail() -> str:
        log.seek(0)
        return log.read().decode(errors="replace")[-2000:]

    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not become healthy: {tail()}")
            time.sleep(0.25)
        yield port, proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


@contextmanager
def redis_server(password: str | None = None) -> Iterator[tuple[str, int]]:
    """A fresh ``redis-server`` (no persistence) on a free loopback port; stopped on exit."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not installed")
    port = free_port()
    conf = [f"port {port}", "bind 127.0.0.1", 'save ""', "appendonly no", "daemonize no",
            "loglevel warning", "logfile \"\""]
    if password:
        conf.append(f"requirepass {password}")
    proc = subprocess.Popen([exe, "-"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    proc.stdin.write(("\n".join(conf) + "\n").encode())
    proc.stdin.close()
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("throwaway redis-server did not start") from None
                time.sleep(0.02)
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()


@contextmanager
def postgres_database(host: str = PG_HOST, port: int = PG_PORT, user: str = PG_USER,
                      password: str = "") -> Iterator[str]:
    """A new, empty database with a random name; dropped (``WITH (FORCE)``) on exit."""
    import psycopg
    from psycopg import sql

    name = f"mt5lab_tmp_{secrets.token_hex(4)}"
    kw = dict(host=host, port=port, user=user, password=password, dbname="postgres", autocommit=True,
              sslmode="disable")
    with psycopg.connect(**kw) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with psycopg.connect(**kw) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def postgres_profile_env(redis_password: str | None = None,
                         database: str | None = None) -> Iterator[dict[str, str]]:
    """Set the postgres profile's variables (a fresh database, a throwaway Redis with a password),
    select the profile, and restore the environment on exit. Yields the values set (secrets!).

    ``database``: use this existing database instead of a fresh one (kept on exit; benchmarks keep
    their loaded data between runs this way)."""
    redis_password = redis_password or secrets.token_urlsafe(16)
    db_context = nullcontext(database) if database else postgres_database()
    with db_context as db, redis_server(redis_password) as (rhost, rport):
        values = {
            "MT5LAB_PROFILE": "postgres", "MT5LAB_PG_USER": PG_USER, "MT5LAB_PG_PASSWORD": "",
            "MT5LAB_PG_HOST": PG_HOST, "MT5LAB_PG_PORT": str(PG_PORT), "MT5LAB_PG_DATABASE": db,
            "MT5LAB_PG_SSLMODE": "disable", "MT5LAB_REDIS_HOST": rhost, "MT5LAB_REDIS_PORT": str(rport),
            "MT5LAB_REDIS_DB": "0", "MT5LAB_REDIS_PASSWORD": redis_password,
        }
        saved = {k: os.environ.get(k) for k in values}
        os.environ.update(values)
        try:
            yield values
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
