"""The `mlops` command: composed from each subpackage's `commands` module (as MLflow composes its CLI).

Heavy libraries (MLflow, Great Expectations, pandas) are imported inside commands, never here.
"""
from __future__ import annotations

import argparse
import os
import sys

from ml_service.errors import MLOpsError

# Command modules, in the order their groups appear in `mlops --help`.
COMMAND_MODULES = ("ml_service.doctor", "ml_service.init.commands", "ml_service.pipelines.commands",
                   "ml_service.tune.commands", "ml_service.workspace.commands",
                   "ml_service.data.commands", "ml_service.monitor.commands", "ml_service.batch.commands",
                   "ml_service.deploy.commands",
                   "ml_service.ci.commands", "ml_service.studio.commands")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every command."""
    import importlib

    parser = argparse.ArgumentParser(prog="mlops", description="GitOps MLOps template: pipelines, "
                                     "models, data contracts, deployments and the workspace UI.")
    parser.add_argument("--project", metavar="PROJECT",
                        help="the model project to act on (default: MLOPS_MODEL, else the first in mlops.yml)")
    groups = parser.add_subparsers(dest="group", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(groups)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `mlops` command."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    args = build_parser().parse_args(argv)
    if args.project:
        os.environ["MLOPS_MODEL"] = args.project  # steps and subprocesses act on the same project
    try:
        return args.func(args)
    except MLOpsError as exc:  # an expected failure: one line, its exit code; the traceback only when asked
        if os.environ.get("MLOPS_DEBUG") == "1":
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
