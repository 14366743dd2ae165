"""The platform's one error base: every expected failure is an MLOpsError with an exit code.

The `mlops` command catches this base (never a list of class names), prints its message on one
line and exits with its code; a traceback only with MLOPS_DEBUG=1. Anything else is a bug and
keeps its traceback. As MLflow's MlflowException carries an error code, each subclass says how
the command ends: 1 for a failure of the work, 2 for bad input or configuration.
"""
from __future__ import annotations

EXIT_FAILED = 1
EXIT_USAGE = 2


class MLOpsError(Exception):
    """An expected failure, with the exit code of the command it ends."""

    exit_code = EXIT_FAILED


class UsageError(MLOpsError):
    """The input or the configuration is wrong: say what and where."""

    exit_code = EXIT_USAGE


DISK_FULL_ERRNOS = (28, 122)  # ENOSPC, EDQUOT (Linux): no space left, disk quota exceeded
DISK_FULL_TEXTS = ("database or disk is full", "No space left on device", "Disk quota exceeded")  # SQLite, OS


def disk_full(exc: BaseException | None) -> BaseException | None:
    """The error in exc's chain that says the disk is full (an OSError, or SQLite's through MLflow and SQLAlchemy,
    which keep only its text), or None."""
    seen: set[int] = set()
    found = None
    while exc is not None and id(exc) not in seen:  # the innermost one: its text is the plainest
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            return exc
        if any(text in str(exc) for text in DISK_FULL_TEXTS):
            found = exc
        exc = exc.__cause__ or exc.__context__
    return found


def disk_full_message(exc: BaseException, where: object = None) -> str:
    """One line for a full disk: what could not be written (the file, else `where`), and what to do."""
    detail = getattr(exc, "strerror", None) or str(exc).splitlines()[0][:300]
    place = getattr(exc, "filename", None) or where
    return (f"the disk is full ({detail}){f' at {place}' if place else ''}: free space there and run again; "
            "what was recorded before is kept")
