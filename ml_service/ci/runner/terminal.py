"""Step output shown on a terminal (issue 24 finding 7): control sequences a step wrote (OSC 52 clipboard
writes, screen clears, a carriage return that overwrites a line) are shown escaped (\\x1b, \\r) unless the
reader asks for the raw bytes; logs are streamed in bounded chunks; a closed pipe (`| head`) ends quietly."""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import IO

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")  # all C0 but \t and \n, DEL, C1
CHUNK = 65536


def sanitize(text: str) -> str:
    """text with every control character but newline and tab shown as an escape (\\x1b, \\r ...)."""
    return CONTROL.sub(lambda m: "\\r" if m.group(0) == "\r" else f"\\x{ord(m.group(0)):02x}", text)


def stream(path: Path, out: IO[str] | None = None, raw: bool = False) -> None:
    """Copy a log to out in bounded chunks (never the whole file in memory), sanitized unless raw."""
    out = out or sys.stdout
    with open(path, "r", encoding="utf-8", errors="replace", newline="") as log:
        while chunk := log.read(CHUNK):
            out.write(chunk if raw else sanitize(chunk))
    out.flush()


def quiet_broken_pipe(func):
    """Run func(); a reader that went away (BrokenPipeError, `mlops ci logs | head`) ends it quietly with 0."""
    try:
        return func()
    except BrokenPipeError:
        try:  # stdout is gone: point it at /dev/null so the interpreter's final flush does not fail again
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 0
