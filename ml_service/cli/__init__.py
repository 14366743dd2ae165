"""The `mlops` command: composed from one module per command group in this package (as Kedro keeps its CLI).

Heavy libraries (MLflow, Great Expectations, pandas) are imported inside commands, never here. A command
imports only the module that registers it: `mlops --help` reads the table COMMANDS and imports none
(tests/cli/test_start.py keeps the table and the modules in step).
"""
from __future__ import annotations

import argparse
import os
import sys

from ml_service.cli.options import PROJECT
from ml_service.errors import EXIT_FAILED, MLOpsError, disk_full, disk_full_message

# Command modules, in the order their groups appear in `mlops --help`.
COMMAND_MODULES = ("ml_service.cli.doctor", "ml_service.cli.init", "ml_service.cli.pipeline", "ml_service.cli.tune",
                   "ml_service.cli.model", "ml_service.cli.ui", "ml_service.cli.workspace", "ml_service.cli.data",
                   "ml_service.cli.monitor", "ml_service.cli.batch", "ml_service.cli.serve", "ml_service.cli.deploy",
                   "ml_service.cli.ci",
                   "ml_service.cli.studio")


# Every top-level command: the module that registers it and its help line, in `mlops --help` order.
COMMANDS = {
    "doctor": ("ml_service.cli.doctor", "check what the flow needs here (Docker, base image, workspace, git hooks, "
                                        "helm) and say what to do"),
    "init": ("ml_service.cli.init", "create a model project from a CSV file (code, data contract, pipelines, "
                                    "mlops.yml entry)"),
    "pipeline": ("ml_service.cli.pipeline", "run, publish and list ML pipelines"),
    "tune": ("ml_service.cli.tune", "tune the project's hyperparameters (Optuna study in the workspace's database)"),
    "model": ("ml_service.cli.model", "model projects and registered models"),
    "ui": ("ml_service.cli.ui", "serve the MLflow UI for the workspace on 127.0.0.1"),
    "workspace": ("ml_service.cli.workspace", "the team workspace: MLflow server on PostgreSQL, users, migrate, "
                                              "backup"),
    "data": ("ml_service.cli.data", "data contracts and data set versions"),
    "monitor": ("ml_service.cli.monitor", "drift of served inputs and predictions"),
    "batch": ("ml_service.cli.batch", "score files in batch with a registered model version"),
    "serve": ("ml_service.cli.serve", "serve a registered model locally (the scoring service)"),
    "smoke-test": ("ml_service.cli.serve", "smoke-test an environment (qa, production) or a URL"),
    "image": ("ml_service.cli.serve", "scoring images"),
    "deploy": ("ml_service.cli.deploy", "deploy model versions and list deployments"),
    "ci": ("ml_service.cli.ci", "run the .pipelines/ YAML locally: runs, approvals, git hooks"),
    "studio": ("ml_service.cli.studio", "web pages for pipeline runs, ML runs, models, approvals and "
                                        "deployments (127.0.0.1)"),
}


def _requested(argv: list[str]) -> str | None:
    """The command named in argv (the first word that is not a top-level option), or None."""
    words = iter(argv)
    for word in words:
        if word == "--project":
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser: the command argv names registered by its module, every other command by name and
    help only (None: every module registers its commands)."""
    import importlib

    parser = argparse.ArgumentParser(prog="mlops", description="GitOps MLOps template: pipelines, "
                                     "models, data contracts, deployments and the workspace UI.")
    PROJECT.add(parser)
    groups = parser.add_subparsers(dest="group", metavar="COMMAND", required=True)
    wanted = COMMAND_MODULES if argv is None else \
        [COMMANDS[name][0] for name in [_requested(argv)] if name in COMMANDS]
    for name in COMMAND_MODULES:
        if name in wanted:
            importlib.import_module(name).add_commands(groups)
        else:
            for command, (module, text) in COMMANDS.items():
                if module == name:
                    groups.add_parser(command, help=text)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `mlops` command."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)  # --project reaches the settings as a value (cli.support)
    try:
        return args.func(args)
    except MLOpsError as exc:  # an expected failure: one line, its exit code; the traceback only when asked
        from ml_service import env as envvars  # only on the error path: `mlops --help` stays light

        if envvars.MLOPS_DEBUG.get() == "1":
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # a full disk is no bug: one line, whichever library met it
        from ml_service import env as envvars

        full, where = disk_full(exc), None
        if full is None and "disk I/O error" in str(exc):  # SQLite, when a full disk has no room for its WAL index
            where = _full_state_dir()
            full = exc if where else None
        if full is None or envvars.MLOPS_DEBUG.get() == "1":
            raise
        print(f"error: {disk_full_message(full, where)}", file=sys.stderr)
        return EXIT_FAILED


def _full_state_dir():
    """The workspace's state folder if its disk has (almost) no space left, else None."""
    import shutil

    from ml_service.config import load_settings

    try:
        state_dir = load_settings().state_dir
        return state_dir if shutil.disk_usage(state_dir).free < 1024 * 1024 else None
    except Exception:  # no settings, no folder: not a question of space
        return None
