"""Data collection: inputs and predictions appended as JSONL, never blocking a request.

A record is serialised where it is collected (one small json.dumps, a few microseconds) and appended to an
in-memory buffer; one writer thread wakes every flush_s seconds (or when the buffer is half full), takes the
whole buffer at once and writes it with one system call per file (which releases the GIL). The request path
therefore pays one json.dumps and a list append, and never waits for, or hands the GIL back and forth with,
a thread that works record by record.

Flush policy: what a kill -9 can lose is bounded: the records of the last flush_s seconds (buffered, not yet
written), never a record written before. A full buffer (capacity records) drops the record and counts it
(on_drop) instead of waiting. close() writes everything buffered.

Rotation and retention: a file past max_bytes is closed and a new one opened; only the keep_files newest
files of the directory are kept (several workers may share it: names carry the process id).

The files (predictions-*.jsonl, one JSON object a line: time, request_id, model_version, inputs,
predictions) are read by drift detection: keep the format.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from ml_service.serving.jsoncodec import COMPACT, string

PATTERN = "predictions-*.jsonl"


class Collector:
    """A bounded buffer of JSON lines drained by one writer thread into rotated, size-capped JSONL files."""

    def __init__(self, directory: str, max_bytes: int = 10_000_000, on_drop=None, capacity: int = 10_000,
                 keep_files: int = 20, flush_s: float = 1.0):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.keep_files = keep_files
        self.flush_s = flush_s
        self.capacity = capacity
        self.on_drop = on_drop or (lambda: None)
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._fd: int | None = None
        self._path: Path | None = None
        self._written = 0
        self._sequence = 0
        self._thread = threading.Thread(target=self._drain, name="data-collector", daemon=True)
        self._thread.start()

    def collect(self, record: dict) -> None:
        """Serialise and buffer one record; never waits."""
        self._buffer(COMPACT(record) + "\n")

    def collect_prediction(self, request_id: str, model_version: str, inputs: list, predictions_json: str) -> None:
        """Buffer the record of one request (the format above; predictions already as JSON), written as collect()
        would write the dict, without building it."""
        self._buffer(f'{{"time":{time.time()!r},"request_id":{string(request_id)},"model_version":'
                     f'{string(model_version)},"inputs":{COMPACT(inputs)},"predictions":{predictions_json}}}\n')

    def _buffer(self, line: str) -> None:
        with self._lock:
            if len(self._lines) >= self.capacity:
                dropped = True
            else:
                dropped = False
                self._lines.append(line)
                if len(self._lines) == self.capacity // 2:
                    self._wake.set()
        if dropped:
            self.on_drop()

    def _open(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._sequence += 1
        name = f"predictions-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{self._sequence:06d}.jsonl"
        self._path = self.directory / name
        self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
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

    def _write(self, lines: list[str]) -> None:
        """Append lines, one write a file, opening a new file whenever the next line would pass max_bytes."""
        if self._fd is not None and self._written + sum(map(len, lines)) <= self.max_bytes:
            self._write_all("".join(lines).encode())  # the usual case: no line-by-line loop holding the GIL
            return
        start, size = 0, self._written
        for i, line in enumerate(lines):  # json.dumps escapes to ASCII: characters are bytes
            if self._fd is None or (size + len(line) > self.max_bytes and (i > start or self._written)):
                if i > start:
                    self._write_all("".join(lines[start:i]).encode())
                self._open()
                start, size = i, 0
            size += len(line)
        if start < len(lines):
            self._write_all("".join(lines[start:]).encode())

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        self._written += len(data)

    def _drain(self) -> None:
        while True:
            self._wake.wait(self.flush_s)
            self._wake.clear()
            stopping = self._stopping  # read before the swap: every record collected before close() is in it
            with self._lock:
                lines, self._lines = self._lines, []
            if lines:
                self._write(lines)
            if stopping:
                break
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def close(self, timeout: float = 5.0) -> None:
        """Write what is buffered, then stop."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
