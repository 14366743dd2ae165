"""Data collection: inputs and predictions appended as JSONL, rotated by size, never blocking a request."""
from __future__ import annotations

import json
import queue
import threading
import time
from pathlib import Path


class Collector:
    """A bounded queue drained by one writer thread; a full queue drops (and counts) the record."""

    def __init__(self, directory: str, max_bytes: int = 10_000_000, on_drop=None, capacity: int = 10_000):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.on_drop = on_drop or (lambda: None)
        self._queue: queue.Queue = queue.Queue(maxsize=capacity)
        self._handle = None
        self._written = 0
        self._thread = threading.Thread(target=self._drain, name="data-collector", daemon=True)
        self._thread.start()

    def collect(self, record: dict) -> None:
        """Queue one record; never waits."""
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.on_drop()

    def _open(self):
        if self._handle is not None:
            self._handle.close()
        stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{time.time_ns() % 1_000_000:06d}"
        self._handle = open(self.directory / f"predictions-{stamp}.jsonl", "a", buffering=1)
        self._written = 0

    def _drain(self) -> None:
        while True:
            record = self._queue.get()
            if record is None:
                break
            line = json.dumps(record, separators=(",", ":")) + "\n"
            if self._handle is None or self._written + len(line) > self.max_bytes:
                self._open()
            self._handle.write(line)
            self._written += len(line)
        if self._handle is not None:
            self._handle.close()

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop."""
        self._queue.put(None)
        self._thread.join(timeout)
