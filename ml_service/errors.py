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
