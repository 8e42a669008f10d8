"""A throwaway Spark standalone cluster on loopback, for tests and benchmarks (never at run time).

One master and N workers, each a JVM started from the pyspark package's own ``bin/spark-class``
(``org.apache.spark.deploy.master.Master`` / ``...worker.Worker``), bound to 127.0.0.1 on free ports,
logs and work dirs in a temporary directory (removed on exit). ``spark-class`` ``exec``s the JVM, so each process is
known by its PID and stopped by it (SIGTERM, then SIGKILL); nothing is found or killed by name.
Workers run executors with this interpreter (``PYSPARK_PYTHON``), so they import the same mt5lab.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spark_home() -> Path:
    """The Spark distribution inside the pyspark package (jars, bin/spark-class)."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


@dataclass
class Cluster:
    master_url: str
    ui_url: str
    master: subprocess.Popen
    workers: list[subprocess.Popen] = field(default_factory=list)
    log_dir: Path | None = None

    def alive_workers(self) -> int:
        """ALIVE workers as the master's JSON status page counts them."""
        with urllib.request.urlopen(f"{self.ui_url}/json/", timeout=5) as r:
            return int(json.load(r).get("aliveworkers", 0))

    def kill_worker(self, i: int) -> int:
        """SIGKILL worker ``i`` (its executors lose their worker and exit); returns its PID."""
        proc = self.workers[i]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        return proc.pid

    def logs(self) -> str:
        """The tail of every process's log (for a failing test's message)."""
        if self.log_dir is None:
            return ""
        return "\n".join(f"== {p.name}\n{p.read_text(errors='replace')[-1500:]}"
                         for p in sorted(self.log_dir.glob("*.log")))


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@contextmanager
def standalone_cluster(workers: int = 2, cores: int = 1, memory: str = "1g",
                       timeout: float = 180.0) -> Iterator[Cluster]:
    """Start a master and ``workers`` workers on 127.0.0.1; yield a :class:`Cluster`; stop all by PID.

    Raises RuntimeError (with the logs' tails) if the workers do not register within ``timeout`` s.
    """
    home = spark_home()
    tmp = Path(tempfile.mkdtemp(prefix="mt5lab-spark-"))
    env = dict(os.environ, SPARK_HOME=str(home), SPARK_LOCAL_IP="127.0.0.1", PYSPARK_PYTHON=sys.executable,
               SPARK_LOG_DIR=str(tmp), SPARK_WORKER_DIR=str(tmp / "work"))
    spark_class = str(home / "bin" / "spark-class")
    port, ui = _free_port(), _free_port()

    def start(name: str, *args: str) -> subprocess.Popen:
        log = open(tmp / f"{name}.log", "wb")  # the child keeps its own copy of the fd
        try:
            return subprocess.Popen([spark_class, *args], env=env, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=tmp)
        finally:
            log.close()

    master = start("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                   "--port", str(port), "--webui-port", str(ui))
    cluster = Cluster(f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{ui}", master, [], tmp)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if master.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Spark master did not start:\n{cluster.logs()}") from None
                time.sleep(0.5)
        for i in range(workers):
            cluster.workers.append(start(f"worker{i}", "org.apache.spark.deploy.worker.Worker", cluster.master_url,
                                         "--host", "127.0.0.1", "--cores", str(cores), "--memory", memory,
                                         "--webui-port", str(_free_port()), "--work-dir", str(tmp / f"work{i}")))
        while True:
            try:
                if cluster.alive_workers() >= workers:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or any(w.poll() is not None for w in cluster.workers):
                raise RuntimeError(f"Spark workers did not register:\n{cluster.logs()}")
            time.sleep(0.5)
        yield cluster
    finally:
        for w in cluster.workers:
            _stop(w)
        _stop(master)
        shutil.rmtree(tmp, ignore_errors=True)  # logs and work dirs (a start failure quoted them)
