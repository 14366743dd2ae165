"""`mlops` run in-process, for tests whose subject is not the process boundary: the CLI's own entry point
(ml_service.cli.main: argparse, the command, the exit code of an MLOpsError) with the environment patched for the
call and its output captured, answered as subprocess.run answers. It saves the ~3 s a new interpreter spends
importing MLflow per call; an unexpected exception propagates (the test fails with its traceback). A test that
kills, signals or times a process still starts a real one."""
from __future__ import annotations

import contextlib
import io
import os
import subprocess

import pytest


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`mlops ARGS` in this process with os.environ updated by env; (returncode, stdout, stderr) as a subprocess."""
    from ml_service.cli import main

    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        for key, value in (env or {}).items():
            patch.setenv(key, value)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse's refusals and --help
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return subprocess.CompletedProcess(["mlops", *args], code or 0, out.getvalue(), err.getvalue())


def mlops(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """As run_cli, but env is the whole environment of the call, as subprocess.run takes it (os.environ is
    restored after)."""
    if env is None:
        return run_cli(*(str(a) for a in args))
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        return run_cli(*(str(a) for a in args))
    finally:
        os.environ.clear()
        os.environ.update(saved)
