"""A fresh embedded store in milliseconds: a copy of an empty store MLflow migrated once on this machine.

Creating MLflow's sqlite schema runs every alembic migration, 3 s of CPU (10-25 s on a loaded
2-core machine): most of a first pipeline run. The first store created with a given MLflow
version is saved, still empty, to `~/.cache/mlops/`; later fresh workspaces copy it and set the
one value MLflow made from the creating process (the Default experiment's artifact location, from
its working directory) as MLflow would for this one. A different MLflow version has its own file.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
from importlib import metadata
from pathlib import Path

from ml_service.workspace.light_store import adopt_empty_store


def template_path() -> Path | None:
    """Where the empty store of the installed MLflow version is kept (None if MLflow is not installed)."""
    try:
        version = metadata.version("mlflow")
    except metadata.PackageNotFoundError:
        return None
    return Path.home() / ".cache" / "mlops" / f"mlflow-{version}-empty.db"


def copy_template(database: Path) -> bool:
    """Make database a copy of the saved empty store; False when there is none (or it is unusable)."""
    template = template_path()
    if template is None or not template.is_file():
        return False
    partial = database.with_name(database.name + ".partial")
    try:
        shutil.copyfile(template, partial)
        adopt_empty_store(partial, os.path.abspath("mlruns") + "/0")
        os.replace(partial, database)
    except (OSError, sqlite3.Error):
        partial.unlink(missing_ok=True)
        return False
    return True


def save_template(database: Path) -> None:
    """Keep a copy of a store MLflow just created (nothing else written yet) for the next fresh workspace."""
    template = template_path()
    if template is None or template.exists():
        return
    try:
        template.parent.mkdir(parents=True, exist_ok=True)
        partial = template.with_name(f"{template.name}.{os.getpid()}.partial")
        shutil.copyfile(database, partial)
        os.replace(partial, template)
    except OSError:
        pass  # only an optimisation
