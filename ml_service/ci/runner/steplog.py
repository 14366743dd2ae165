"""A step's log with a size cap (issue 24 finding 5): the first half of the cap is kept as written, then only
the newest output (between a quarter and a half of the cap, in two rotating spool files); when the step ends
the log says how many bytes were elided in the middle. Memory use does not depend on the output's size.

The cap is mlops.yml `ci.log_max_mb` (default DEFAULT_MAX_MB) per step log.

A full disk is not a crash (issue 24 finding 7): every `check_every` bytes written the log looks at the free space of
its file system, and once it is under the reserve (RESERVE_BYTES, or a tenth of a smaller file system), or a write
fails for want of space, it keeps nothing more and `full` says why. The caller then stops the step; the space left
lets the run store record the step, and the run, as failed for that reason instead of dying mid-write.
"""
from __future__ import annotations

import os
from pathlib import Path

from ml_service.errors import disk_full

DEFAULT_MAX_MB = 64
RESERVE_BYTES = 16 * 1024 * 1024


def free_bytes(folder: Path) -> tuple[int, int]:
    """(bytes free to this user, bytes in all) of the file system holding folder."""
    stat = os.statvfs(folder)
    return stat.f_bavail * stat.f_frsize, stat.f_blocks * stat.f_frsize


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
        self.full = ""  # why nothing more is kept: the disk is (nearly) full
        _, total = free_bytes(self.path.parent)
        self.reserve = min(RESERVE_BYTES, total // 10)
        self.check_every = max(min(1 << 20, self.reserve // 4), 4096)
        self.since_check = 0

    def _size(self) -> int:
        try:
            return os.path.getsize(self.path)
        except OSError:
            return 0

    def write(self, text: str) -> None:
        """Append text (kept in the head, or in the tail spool once the head is full); nothing once `full`."""
        if not text or self.full:
            return
        try:
            self._write(text)
        except OSError as exc:
            if disk_full(exc) is None:
                raise
            self._stop(f"no space left on the disk holding {self.path.parent}")
            return
        self.since_check += len(text)
        if self.since_check >= self.check_every:
            self.since_check = 0
            free, _ = free_bytes(self.path.parent)
            if free < self.reserve:
                self._stop(f"the disk holding {self.path.parent} has {free} bytes free, under the {self.reserve} "
                           "kept for the run's records")

    def _stop(self, why: str) -> None:
        """Keep nothing more; say why in the log if it can still be written."""
        self.full = why
        try:
            self.file.write(f"\n##[error]disk full: {why}: the rest of this step's output is not kept and the step "
                            "is stopped\n")
            self.file.flush()
        except OSError:
            pass

    def _write(self, text: str) -> None:
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
        try:
            self.file.flush()
            if self.tail_file is not None:
                self.tail_file.flush()
        except OSError as exc:
            if disk_full(exc) is None:
                raise
            self._stop(f"no space left on the disk holding {self.path.parent}")

    def close(self) -> None:
        """End the log: the tail (older segment, then newer) after a line saying what was elided."""
        try:
            self._close()
        except OSError as exc:  # the tail could not be spliced back in: the disk filled meanwhile
            if disk_full(exc) is None:
                raise
            self.full = self.full or f"no space left on the disk holding {self.path.parent}"

    def _close(self) -> None:
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
