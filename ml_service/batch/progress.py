"""Progress of a batch job: a bar redrawn in place on a terminal (rows, rows/s, ETA), plain lines elsewhere."""
from __future__ import annotations

import sys
import time

from ml_service.live import CLEAR

WIDTH = 24
PLAIN_EVERY = 10.0  # seconds between plain lines


class Progress:
    """update(rows) after each chunk; done() ends the bar."""

    def __init__(self, total: int | None, already: int = 0, stream=None):
        self.stream = stream or sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.total, self.already, self.rows = total, already, already  # total None: not counted yet
        self.started = self.last = time.monotonic()

    def set_total(self, total: int) -> None:
        """The total is known now (a new job's input is counted while it is scored)."""
        self.total = total

    def _text(self) -> str:
        took = max(time.monotonic() - self.started, 1e-6)
        rate = (self.rows - self.already) / took
        if self.total is None:
            eta, share, total = "?", 0.0, "?"
        else:
            left = max(self.total - self.rows, 0)
            eta = f"{left / rate:.0f}s" if rate > 0 else "?"
            share, total = min(self.rows / max(self.total, 1), 1.0), f"{self.total:,}"
        bar = "#" * int(share * WIDTH)
        return f"[{bar:<{WIDTH}}] {self.rows:,}/{total} rows  {rate:,.0f} rows/s  ETA {eta}"

    def update(self, rows: int) -> None:
        """rows more are done."""
        self.rows += rows
        now = time.monotonic()
        if self.tty:
            self.stream.write(CLEAR + self._text())
        elif now - self.last >= PLAIN_EVERY:
            self.stream.write(self._text() + "\n")
            self.last = now
        else:
            return
        self.stream.flush()

    def done(self) -> None:
        """Clear the bar (a terminal), nothing otherwise."""
        if self.tty:
            self.stream.write(CLEAR)
            self.stream.flush()
