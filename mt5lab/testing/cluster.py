"""A throwaway PostgreSQL *cluster* that really checks passwords (scram-sha-256), for tests.

The machine's server trusts every local connection, so it cannot prove that a wrong password is
refused, nor that a right one travels intact. This starts a private cluster (``initdb`` +
``pg_ctl``) on a free loopback port under a temporary directory: TCP connections need a
scram-sha-256 password, the Unix socket (only in that directory) trusts the superuser for setup.

The password never reaches the server or its log in clear: the role is created with a SCRAM
verifier computed here (``CREATE ROLE ... PASSWORD 'SCRAM-SHA-256$...'`` stores it as is). Running
as root (CI), the cluster runs as the ``postgres`` system user through ``runuser``.
"""

from __future__ import annotations

import base64
import glob
import hashlib
import hmac
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mt5lab.testing.sandbox import free_port


def pg_bindir() -> Path:
    """Directory with ``initdb`` and ``pg_ctl`` (``PG_BINDIR``, else Debian's layout, else PATH)."""
    if env := os.environ.get("PG_BINDIR"):
        return Path(env)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    exe = shutil.which("initdb")
    if exe:
        return Path(exe).parent
    raise RuntimeError("initdb not found: install the PostgreSQL server package (postgresql-15)")


def scram_verifier(password: str, iterations: int = 4096) -> str:
    """The ``SCRAM-SHA-256$...`` verifier PostgreSQL stores for ``password`` (RFC 5802/7677)."""
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def _as_owner(cmd: list[str], owner: str | None) -> list[str]:
    return ["runuser", "-u", owner, "--", *cmd] if owner else cmd


@contextmanager
def postgres_cluster(roles: dict[str, str], database: str = "mt5lab") -> Iterator[dict]:
    """Start a private cluster; create ``roles`` (name -> password) and ``database`` (owned by the
    first role). Yields host, port, database, ``superuser_dsn`` (socket, trust), ``log`` and
    ``datadir`` paths. Everything is removed on exit."""
    import psycopg
    from psycopg import sql

    bindir = pg_bindir()
    owner = "postgres" if os.geteuid() == 0 else None
    base = Path(tempfile.mkdtemp(prefix="mt5lab-pgcluster-"))
    datadir, sock, log = base / "data", base / "sock", base / "server.log"
    sock.mkdir()
    if owner:
        shutil.chown(base, owner)
        shutil.chown(sock, owner)
    port = free_port()
    try:
        subprocess.run(_as_owner([str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres",
                                  "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync",
                                  "--no-instructions", "-E", "UTF8", "--locale=C.UTF-8"], owner),
                       check=True, capture_output=True)
        (datadir / "pg_hba.conf").write_text(
            "local all postgres trust\nhost all all 127.0.0.1/32 scram-sha-256\n")
        opts = (f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off "
                f"-c password_encryption=scram-sha-256 -c log_connections=on")
        subprocess.run(_as_owner([str(bindir / "pg_ctl"), "-D", str(datadir), "-o", opts, "-l", str(log),
                                  "-w", "-t", "60", "start"], owner), check=True, capture_output=True)
        su = {"host": str(sock), "port": port, "user": "postgres", "dbname": "postgres"}
        with psycopg.connect(**su, autocommit=True) as conn:
            for name, password in roles.items():
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(name), sql.Literal(scram_verifier(password))))
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(database), sql.Identifier(next(iter(roles)))))
        yield {"host": "127.0.0.1", "port": port, "database": database, "superuser": su,
               "log": log, "datadir": datadir}
    finally:
        if (datadir / "postmaster.pid").exists():
            subprocess.run(_as_owner([str(bindir / "pg_ctl"), "-D", str(datadir), "-m", "immediate",
                                      "-w", "stop"], owner), capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
