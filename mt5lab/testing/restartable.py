"""Servers a test can crash and restart under a running client: a private PostgreSQL cluster and a
Redis server, each on its own free loopback port that stays the same across restarts.

Neither touches the machine's servers (5432, 6379): :class:`PostgresServer` is a new cluster
(``initdb`` + ``pg_ctl``, trust auth on loopback and its own socket directory) under a temporary
directory, run as the ``postgres`` system user when the caller is root (as :mod:`.cluster` does);
:class:`RedisServer` is a new ``redis-server`` with an append-only file (``appendfsync always``), so a
restart keeps every acknowledged write, as a production Redis with AOF does. Both are stopped by
their own PID: ``crash()`` is an immediate stop (PostgreSQL: SIGQUIT to the postmaster, crash
recovery on the next start; Redis: SIGKILL), ``start()`` brings the same data back on the same port.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from mt5lab.testing.cluster import _as_owner, pg_bindir
from mt5lab.testing.sandbox import free_port


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)
    raise RuntimeError(f"process {pid} did not exit within {timeout:.0f} s")


def missing_binaries() -> list[str]:
    """What this machine lacks to run these servers (empty: nothing)."""
    out = []
    try:
        pg_bindir()
    except RuntimeError:
        out.append("initdb/pg_ctl (postgresql-15)")
    if shutil.which("redis-server") is None:
        out.append("redis-server")
    return out


class PostgresServer:
    """A private cluster on ``127.0.0.1:port`` with database ``database``, user ``postgres`` (trust)."""

    def __init__(self, database: str = "mt5lab"):
        self.bindir = pg_bindir()
        self.owner = "postgres" if os.geteuid() == 0 else None
        self.base = Path(tempfile.mkdtemp(prefix="mt5lab-pgrestart-"))
        self.datadir, self.sock, self.log = self.base / "data", self.base / "sock", self.base / "server.log"
        self.sock.mkdir()
        if self.owner:
            shutil.chown(self.base, self.owner)
            shutil.chown(self.sock, self.owner)
        self.port, self.database = free_port(), database
        subprocess.run(_as_owner([str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", "postgres",
                                  "--auth=trust", "--no-sync", "--no-instructions", "-E", "UTF8",
                                  "--locale=C.UTF-8"], self.owner), check=True, capture_output=True)
        (self.datadir / "pg_hba.conf").write_text("local all postgres trust\nhost all all 127.0.0.1/32 trust\n")

    def env(self) -> dict[str, str]:
        """The postgres profile's PostgreSQL variables for this server."""
        return {"MT5LAB_PG_HOST": "127.0.0.1", "MT5LAB_PG_PORT": str(self.port), "MT5LAB_PG_USER": "postgres",
                "MT5LAB_PG_PASSWORD": "", "MT5LAB_PG_DATABASE": self.database, "MT5LAB_PG_SSLMODE": "disable"}

    @property
    def pid(self) -> int | None:
        try:
            return int((self.datadir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def start(self) -> None:
        """Start (or restart after :meth:`crash`) and create the database once."""
        opts = f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(_as_owner([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-o", opts, "-l",
                                  str(self.log), "-w", "-t", "120", "start"], self.owner),
                       check=True, capture_output=True)
        import psycopg
        from psycopg import sql

        with psycopg.connect(host=str(self.sock), port=self.port, user="postgres", dbname="postgres",
                             autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)).fetchone():
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))

    def crash(self) -> None:
        """Immediate shutdown (SIGQUIT to this cluster's postmaster): connections drop mid-query."""
        pid = self.pid
        if pid is not None:
            os.kill(pid, signal.SIGQUIT)
            _wait_gone(pid, 60)

    def close(self) -> None:
        pid = self.pid
        if pid is not None:
            try:
                os.kill(pid, signal.SIGINT)  # fast shutdown
                _wait_gone(pid, 60)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class RedisServer:
    """A ``redis-server`` on ``127.0.0.1:port`` with a password and an append-only file."""

    def __init__(self, password: str):
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed")
        self.exe, self.password, self.port = exe, password, free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="mt5lab-redisrestart-"))
        self.proc: subprocess.Popen | None = None

    def env(self) -> dict[str, str]:
        """The postgres profile's Redis variables for this server."""
        return {"MT5LAB_REDIS_HOST": "127.0.0.1", "MT5LAB_REDIS_PORT": str(self.port), "MT5LAB_REDIS_DB": "0",
                "MT5LAB_REDIS_PASSWORD": self.password}

    def start(self) -> None:
        """Start (or restart after :meth:`crash`, from the append-only file); the config, password
        included, goes in through stdin."""
        conf = [f"port {self.port}", "bind 127.0.0.1", f"dir {self.dir}", "appendonly yes", "appendfsync always",
                'save ""', "daemonize no", "loglevel warning", 'logfile ""', f"requirepass {self.password}"]
        self.proc = subprocess.Popen([self.exe, "-"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.proc.stdin.write(("\n".join(conf) + "\n").encode())
        self.proc.stdin.close()
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, password=self.password, socket_timeout=5)
        deadline = time.monotonic() + 60
        try:
            while True:
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("redis-server did not start") from None
                    time.sleep(0.05)
        finally:
            client.close()

    def crash(self) -> None:
        """SIGKILL by PID."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:  # pragma: no cover
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
