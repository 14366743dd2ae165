"""Run the `mlops` command in the test's own process, as `python -m ml_service.cli` would, without paying a
fresh interpreter and MLflow import (seconds) per call. For tests whose subject is what the command does, not
the process boundary: a test that kills, signals or times a process still starts a real one."""
from __future__ import annotations

import contextlib
import io
import os
import subprocess


def mlops(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`mlops *args` in this process: its exit code (an argparse exit included) and what it printed.

    env: the whole environment of the call, as subprocess.run takes it (os.environ is restored after).
    """
    from ml_service.cli import main

    saved = dict(os.environ)
    out, err = io.StringIO(), io.StringIO()
    try:
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as exc:  # argparse's usage errors and --help
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return subprocess.CompletedProcess(["mlops", *args], code or 0, out.getvalue(), err.getvalue())
