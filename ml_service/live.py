"""One live status line under permanent ones: the running step with its elapsed time, redrawn in place.

On a terminal a small thread redraws the live line every quarter second; anywhere else nothing is
drawn and only the permanent lines are written, so logs and pipes get plain lines.
"""
from __future__ import annotations

import sys
import threading
import time

CLEAR = "\r\033[K"


class LiveLine:
    """`line(text)` writes a permanent line; `start(text)` shows a live one until the next `line`/`stop`."""

    def __init__(self, stream=None, interval: float = 0.25):
        self.stream = stream or sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval
        self._lock = threading.Lock()
        self._live: tuple[str, float] | None = None
        self._ticker: threading.Thread | None = None

    def start(self, text: str) -> None:
        """Show `text` with a ticking elapsed time (a terminal only)."""
        if not self.tty:
            return
        with self._lock:
            self._live = (text, time.monotonic())
            self._draw()
            if self._ticker is None:
                self._ticker = threading.Thread(target=self._tick, name="live-line", daemon=True)
                self._ticker.start()

    def line(self, text: str) -> None:
        """A permanent line; the live line, if any, ends and is cleared first."""
        with self._lock:
            prefix = CLEAR if self._live else ""
            self._live = None
            self.stream.write(f"{prefix}{text}\n")
            self.stream.flush()

    def stop(self) -> None:
        """Clear the live line, writing nothing in its place."""
        with self._lock:
            if self._live:
                self.stream.write(CLEAR)
                self.stream.flush()
            self._live = None

    def _draw(self) -> None:
        text, since = self._live
        self.stream.write(f"{CLEAR}{text}  {time.monotonic() - since:.1f}s")
        self.stream.flush()

    def _tick(self) -> None:
        while True:
            time.sleep(self.interval)
            with self._lock:
                if self._live:
                    self._draw()
