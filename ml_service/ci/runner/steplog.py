"""A step's log with a size cap (issue 24 finding 5): the first half of the cap is kept as written, then only
the newest output (between a quarter and a half of the cap, in two rotating spool files); when the step ends
the log says how many bytes were elided in the middle. Memory use does not depend on the output's size.

The cap is mlops.yml `ci.log_max_mb` (default DEFAULT_MAX_MB) per step log.
"""
from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MAX_MB = 64


class StepLog:
    """Append-only text log of one step, capped; `close()` splices the kept tail back in."""

    def __init__(self, path: Path, max_bytes: int = DEFAULT_MAX_MB * 1024 * 1024):
        self.path = Path(path)
        self.max_bytes = max(int(max_bytes), 4096)
        self.file = open(self.path, "a", encoding="utf-8", errors="replace")
        self.head_left = self.max_bytes // 2 - self._size()
        self.segment = max(self.max_bytes // 4, 1024)
        self.spools = [self.path.with_name(self.path.name + f".tail{i}") for i in (0, 1)]
        self.current = -1
        self.tail_file = None
        self.tail_size = 0
        self.elided = 0

    def _size(self) -> int:
        try:
            return os.path.getsize(self.path)
        except OSError:
            return 0

    def write(self, text: str) -> None:
        """Append text (kept in the head, or in the tail spool once the head is full)."""
        if not text:
            return
        if self.head_left > 0:
            data = text.encode("utf-8", errors="replace")
            head, rest = data[:self.head_left], data[self.head_left:]
            self.file.write(head.decode("utf-8", errors="ignore"))
            self.head_left -= len(head)
            if not rest:
                return
            text = rest.decode("utf-8", errors="ignore")
        self._tail(text)

    def _tail(self, text: str) -> None:
        data = text.encode("utf-8", errors="replace")
        if len(data) > self.segment:  # one piece larger than a segment: only its end is kept
            self.elided += len(data) - self.segment
            data = data[-self.segment:]
            self._rotate()
            self._rotate()  # both older segments dropped (counted as elided)
        if self.tail_file is None or self.tail_size + len(data) > self.segment:
            self._rotate()
        self.tail_file.write(data)
        self.tail_size += len(data)

    def _rotate(self) -> None:
        if self.tail_file is not None:
            self.tail_file.close()
        self.current = (self.current + 1) % 2
        target = self.spools[self.current]
        if target.exists():  # the older segment is dropped: its bytes are elided
            self.elided += target.stat().st_size
        self.tail_file = open(target, "wb")
        self.tail_size = 0

    def flush(self) -> None:
        """Flush what is buffered."""
        self.file.flush()
        if self.tail_file is not None:
            self.tail_file.flush()

    def close(self) -> None:
        """End the log: the tail (older segment, then newer) after a line saying what was elided."""
        if self.tail_file is not None:
            self.tail_file.close()
            order = [self.spools[(self.current + 1) % 2], self.spools[self.current]]
            if self.elided:
                self.file.write(f"\n##[warning]log cap ({self.max_bytes} bytes): {self.elided} bytes of output "
                                "elided here\n")
            self.file.flush()
            with open(self.path, "ab") as out:
                for spool in order:
                    if spool.exists():
                        with open(spool, "rb") as part:
                            while chunk := part.read(1 << 20):
                                out.write(chunk)
                        spool.unlink()
            self.tail_file = None
        self.file.close()
