"""Run the scoring app: uvicorn with the hardened protocol, a draining shutdown, one worker per core.

On SIGTERM (or SIGINT) a worker first drains for drain_s: readiness answers 503 and every response closes
its connection, so clients move to other replicas while the listener still accepts; then uvicorn stops
accepting, closes idle connections and waits up to graceful_timeout_s for requests in flight; then the
app shuts down (logs and collected data flushed). A second signal exits at once.

Several workers are separate processes, each with its own socket bound with SO_REUSEPORT (the kernel
spreads connections evenly); the parent forwards signals and, if a worker dies, stops the others and exits
with its code (the container is restarted).
"""
from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from functools import partial
from typing import Mapping

import uvicorn

from ml_service.serving.app import ScoringApp, unwrap
from ml_service.serving.config import ServingSettings
from ml_service.serving.protocol import HardenedProtocol

BACKLOG = 2048


class DrainingServer(uvicorn.Server):
    """uvicorn.Server whose first exit signal drains before it stops."""

    def __init__(self, config: uvicorn.Config, drain_s: float):
        super().__init__(config)
        self.drain_s = drain_s
        self.draining_since: float | None = None

    def handle_exit(self, sig, frame) -> None:
        """First signal: drain (readiness false, connections closed after their response); then exit."""
        if self.draining_since is None and self.started:
            self.draining_since = time.monotonic()
            unwrap(self.config.loaded_app).begin_drain()
        else:
            super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        """Exit once the drain period is over."""
        if self.draining_since is not None and time.monotonic() - self.draining_since >= self.drain_s:
            self.should_exit = True
        return await super().on_tick(counter)


def uvicorn_config(settings: ServingSettings, host: str, port: int) -> uvicorn.Config:
    """The uvicorn configuration of one worker: the app made from settings (in the worker), the service's limits."""
    return uvicorn.Config(partial(ScoringApp, settings), factory=True, host=host, port=port,
                          http=HardenedProtocol, loop="uvloop", lifespan="on", access_log=False,
                          log_level="warning", server_header=False, proxy_headers=False, backlog=BACKLOG,
                          timeout_keep_alive=settings.keep_alive_s,
                          timeout_graceful_shutdown=settings.graceful_timeout_s)


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A listening socket bound with SO_REUSEPORT, so that several workers share host:port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


def run_worker(settings: ServingSettings, host: str, port: int, reuse_port: bool = False) -> int:
    """Serve in this process until a signal; the exit code."""
    server = DrainingServer(uvicorn_config(settings, host, port), settings.drain_s)
    sockets = [reuse_port_socket(host, port)] if reuse_port else None
    server.run(sockets=sockets)
    return 0 if server.started else 3


def supervise(workers: int, host: str, port: int, env: Mapping[str, str] | None = None) -> int:
    """Run workers worker processes on host:port, with env as their environment (None: this one's); forward
    SIGTERM/SIGINT; the exit code."""
    argv = [sys.executable, "-m", "ml_service.serving", "--host", host, "--port", str(port), "--workers", "1",
            "--reuse-port"]
    children = [subprocess.Popen(argv, env=env) for _ in range(workers)]
    stopping = []

    def forward(sig, frame):
        stopping.append(sig)
        for child in children:
            if child.poll() is None:
                child.send_signal(sig)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    while not stopping:
        dead = [c for c in children if c.poll() is not None]
        if dead:
            forward(signal.SIGTERM, None)
            for child in children:
                child.wait()
            return dead[0].returncode or 1
        time.sleep(0.2)
    return max(child.wait() for child in children)
