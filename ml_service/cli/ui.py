"""`mlops ui`: the MLflow UI for the workspace on 127.0.0.1."""
from __future__ import annotations

import sys

from ml_service.cli.support import command_settings


def cmd_ui(args) -> int:
    """Serve the MLflow UI for the workspace on 127.0.0.1."""
    import os
    import subprocess

    from ml_service.team.server import NO_JOB_RUNNER
    from ml_service.workspace.tracking import is_local_store

    settings = command_settings(args)
    if not is_local_store(settings):
        print(f"the workspace is an MLflow server: open {settings.tracking_uri}")
        return 0
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", settings.tracking_uri,
            "--default-artifact-root", settings.artifact_root.as_uri(),
            "--host", "127.0.0.1", "--port", str(args.port), "--workers", "1"]
    print(f"MLflow UI on http://127.0.0.1:{args.port} (Ctrl-C to stop)", flush=True)
    try:
        return subprocess.call(argv, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", **NO_JOB_RUNNER})
    except KeyboardInterrupt:
        return 0


def add_commands(groups) -> None:
    """Register `mlops ui`."""
    ui = groups.add_parser("ui", help="serve the MLflow UI for the workspace on 127.0.0.1")
    ui.add_argument("--port", type=int, default=5000, help="port (default: %(default)s)")
    ui.set_defaults(func=cmd_ui)
