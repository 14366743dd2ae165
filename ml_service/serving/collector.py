"""Data collection: inputs and predictions appended as JSONL, never blocking a request.

Flush policy: one writer thread drains a bounded queue into a buffered file and flushes it every flush_s
seconds, when it rotates, and at shutdown (close()). What a kill -9 can lose is therefore bounded: the
records of the last flush_s seconds (what was queued or buffered, not yet flushed), never a record written
before the last flush. A full queue drops the record and counts it (on_drop) instead of waiting.

Rotation and retention: a file past max_bytes is closed and a new one opened; only the keep_files newest
files of the directory are kept (several workers may share it: names carry the process id).
"""
from __future__ import annotations

import json
import os
import queue
import threading
import time
from pathlib import Path

PATTERN = "predictions-*.jsonl"


class Collector:
    """A bounded queue drained by one writer thread into rotated, size-capped JSONL files."""

    def __init__(self, directory: str, max_bytes: int = 10_000_000, on_drop=None, capacity: int = 10_000,
                 keep_files: int = 20, flush_s: float = 1.0):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.keep_files = keep_files
        self.flush_s = flush_s
        self.on_drop = on_drop or (lambda: None)
        self._queue: queue.Queue = queue.Queue(maxsize=capacity)
        self._handle = None
        self._path: Path | None = None
        self._written = 0
        self._sequence = 0
        self._thread = threading.Thread(target=self._drain, name="data-collector", daemon=True)
        self._thread.start()

    def collect(self, record: dict) -> None:
        """Queue one record; never waits."""
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.on_drop()

    def _open(self) -> None:
        if self._handle is not None:
            self._handle.close()
        self._sequence += 1
        name = f"predictions-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{self._sequence:06d}.jsonl"
        self._path = self.directory / name
        self._handle = open(self._path, "a", buffering=1 << 16)
        self._written = 0
        self._retain()

    def _retain(self) -> None:
        """Delete the oldest files beyond keep_files (never the one being written)."""
        files = []
        for path in self.directory.glob(PATTERN):
            try:
                files.append((path.stat().st_mtime, path.name, path))
            except OSError:  # deleted meanwhile by another worker
                continue
        files.sort()
        for _, _, path in files[:max(0, len(files) - self.keep_files)]:
            if path != self._path:
                path.unlink(missing_ok=True)

    def _drain(self) -> None:
        next_flush = time.monotonic() + self.flush_s
        while True:
            try:
                record = self._queue.get(timeout=max(0.0, next_flush - time.monotonic()))
            except queue.Empty:
                record = ...
            if record is None:
                break
            if record is not ...:
                line = json.dumps(record, separators=(",", ":")) + "\n"
                size = len(line.encode())
                if self._handle is None or self._written + size > self.max_bytes:
                    self._open()
                self._handle.write(line)
                self._written += size
            if time.monotonic() >= next_flush:
                if self._handle is not None:
                    self._handle.flush()
                next_flush = time.monotonic() + self.flush_s
        if self._handle is not None:
            self._handle.close()

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, flush, then stop."""
        self._queue.put(None)
        self._thread.join(timeout)
