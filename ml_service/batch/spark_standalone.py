"""A Spark standalone cluster on this machine: one master and N workers, each a process (group) of its own on
127.0.0.1, started with pyspark's own `spark-class` (the tests, the benchmark, and trying `--engine spark`
against a real cluster without one).

    with StandaloneCluster(workers=2, worker_memory="1g", folder=tmp) as cluster:
        mlops batch score ... --engine spark --master cluster.url

Each worker runs in a new session, so killing one (kill_worker) ends its executor and Python workers too, as
losing a machine would.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from ml_service.batch import BatchError


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def spark_home() -> Path:
    """The Spark distribution inside the pyspark package (bin/spark-class); a BatchError when missing."""
    try:
        import pyspark
    except ImportError:
        raise BatchError("pyspark is not installed; install it with: make install-spark") from None
    return Path(pyspark.__file__).parent


class StandaloneCluster:
    """A master and `workers` workers (`cores` cores, `worker_memory` each) on 127.0.0.1; logs in folder."""

    def __init__(self, workers: int = 2, folder: Path | None = None, cores: int = 1, worker_memory: str = "1g",
                 timeout: float = 300.0):
        import tempfile

        self.folder = Path(folder or tempfile.mkdtemp(prefix="mlops-spark-cluster-"))
        self.count, self.cores, self.memory, self.timeout = workers, cores, worker_memory, timeout
        self.port, self.ui_port = _free_port(), _free_port()
        self.master: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []

    @property
    def url(self) -> str:
        """The master's URL (spark://127.0.0.1:PORT)."""
        return f"spark://127.0.0.1:{self.port}"

    def _spawn(self, name: str, *args: str) -> subprocess.Popen:
        home = spark_home()
        env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1",
               "SPARK_WORKER_DIR": str(self.folder / "work"), "SPARK_LOCAL_DIRS": str(self.folder / "tmp")}
        log = open(self.folder / f"{name}.log", "ab")
        try:
            return subprocess.Popen([str(home / "bin" / "spark-class"), *args], stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env, cwd=self.folder, start_new_session=True)
        finally:
            log.close()

    def state(self) -> dict:
        """The master's own view (its web UI's /json): workers and their state, applications."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/json/", timeout=10) as response:
            return json.loads(response.read())

    def alive_workers(self) -> int:
        """How many workers the master holds ALIVE."""
        try:
            return sum(1 for w in self.state().get("workers", []) if w.get("state") == "ALIVE")
        except OSError:
            return 0

    def start(self) -> "StandaloneCluster":
        """Start the master, then the workers; return once the master holds them all."""
        (self.folder / "work").mkdir(parents=True, exist_ok=True)
        (self.folder / "tmp").mkdir(parents=True, exist_ok=True)
        self.master = self._spawn("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                                  "--port", str(self.port), "--webui-port", str(self.ui_port))
        for i in range(self.count):
            self.workers.append(self._spawn(f"worker-{i}", "org.apache.spark.deploy.worker.Worker", self.url,
                                            "--host", "127.0.0.1", "--cores", str(self.cores), "--memory",
                                            self.memory, "--webui-port", str(_free_port()),
                                            "--work-dir", str(self.folder / "work" / str(i))))
        deadline = time.monotonic() + self.timeout
        while self.alive_workers() < self.count:
            dead = [p for p in [self.master, *self.workers] if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                self.stop()
                raise BatchError(f"the Spark standalone cluster did not start (logs in {self.folder})")
            time.sleep(0.5)
        return self

    def kill_worker(self, i: int) -> None:
        """SIGKILL worker i with its executor and Python workers (its whole session), as a lost machine."""
        try:
            os.killpg(self.workers[i].pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.workers[i].wait()

    def stop(self) -> None:
        """Stop every worker, then the master (their process groups)."""
        for process in [*self.workers, self.master]:
            if process is None or process.poll() is not None:
                continue
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            except ProcessLookupError:
                pass

    def __enter__(self) -> "StandaloneCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
