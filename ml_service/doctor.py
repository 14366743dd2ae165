"""The checks behind `mlops doctor`: does this machine have what the flow needs? For each problem, what to do.

`--fix` sets up what can be set up here (the Docker engine and the offline base image, as root
or with password-less sudo); otherwise it stops at once with the one command to run. `make run`
calls `mlops doctor --fix` before the first pipeline.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ml_service.config import Settings

MIN_FREE_GB = 3.0
SCHEMA = Path(__file__).resolve().parent / "mlops.schema.json"
OK, WARN, FAIL = "ok", "warn", "FAIL"


@dataclass(frozen=True)
class Check:
    """One thing the flow needs: its state, what was found, and what to do about it."""

    name: str
    state: str  # ok | warn | FAIL
    detail: str
    fix: str = ""
    script: str = ""  # a bootstrap script under environment_setup/ that --fix may run


def python_check() -> Check:
    """Python 3.11, the version the project pins."""
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info[:2] == (3, 11):
        return Check("python", OK, f"Python {version}")
    return Check("python", FAIL, f"Python {version}", "install Python 3.11 and python3-venv, then `make install`")


def venv_check(settings: Settings) -> Check:
    """The project's environment: installed, and this command runs from it."""
    if sys.prefix != sys.base_prefix:
        return Check("environment", OK, f"{sys.prefix}")
    return Check("environment", WARN, "not running inside a virtual environment", "run `make install`, then use "
                 f"{settings.root / '.venv' / 'bin' / 'mlops'}")


def docker_check(settings: Settings) -> tuple[Check, object]:
    """A Docker engine answers (the release's QA stage and the docker compute target need it)."""
    from ml_service.containers import ImageError, docker_client

    try:
        client = docker_client()
    except ImageError:
        return Check("docker engine", FAIL, "no Docker engine answers",
                     "sudo bash environment_setup/docker_engine.sh", "docker_engine.sh"), None
    return Check("docker engine", OK, f"Docker {client.version().get('Version', '?')}"), client


def base_image_check(settings: Settings, client) -> Check:
    """The offline Python base image of every scoring and training image."""
    fix = f"sudo bash environment_setup/base_image.sh {settings.base_image}"
    if client is None:
        return Check("base image", FAIL, f"{settings.base_image}: cannot look without a Docker engine", fix,
                     "base_image.sh")
    from docker.errors import ImageNotFound

    try:
        client.images.get(settings.base_image)
    except ImageNotFound:
        return Check("base image", FAIL, f"{settings.base_image} is missing", fix, "base_image.sh")
    return Check("base image", OK, settings.base_image)


def disk_check(settings: Settings) -> Check:
    """Room for images, wheels and the workspace."""
    where = settings.state_dir if settings.state_dir.exists() else settings.root
    free = shutil.disk_usage(where).free / 1e9
    if free >= MIN_FREE_GB:
        return Check("disk", OK, f"{free:.1f} GB free under {where}")
    return Check("disk", WARN, f"only {free:.1f} GB free under {where}", f"free at least {MIN_FREE_GB:.0f} GB "
                 "(`docker image prune`, `make clean`)")


def workspace_check(settings: Settings) -> Check:
    """The MLflow workspace: the embedded store's folder is writable, or the server answers."""
    from ml_service.workspace.tracking import is_local_store

    if is_local_store(settings):
        try:
            settings.state_dir.mkdir(parents=True, exist_ok=True)
            probe = settings.state_dir / ".doctor"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            return Check("workspace", FAIL, f"{settings.state_dir}: {exc.strerror}",
                         "set workspace.state_dir in mlops.yml (or MLOPS_STATE_DIR) to a writable folder")
        return Check("workspace", OK, f"embedded store under {settings.state_dir}")
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(f"{settings.tracking_uri.rstrip('/')}/health", timeout=5).read()
    except (urllib.error.URLError, OSError) as exc:
        return Check("workspace", FAIL, f"{settings.tracking_uri} does not answer ({getattr(exc, 'reason', exc)})",
                     "start the MLflow server, or empty workspace.tracking_uri for the embedded store")
    return Check("workspace", OK, f"MLflow server {settings.tracking_uri}")


def git_check(settings: Settings) -> Check:
    """git, and whether `git push` runs the pipelines here (the post-receive hook)."""
    if shutil.which("git") is None:
        return Check("git", FAIL, "git is not installed", "apt-get install git")
    inside = subprocess.run(["git", "-C", str(settings.root), "rev-parse", "--git-dir"], capture_output=True)
    if inside.returncode != 0:
        return Check("git", WARN, f"{settings.root} is not a git repository", "git init, then commit")
    hook = settings.state_dir / "ci" / "remote.git" / "hooks" / "post-receive"
    if not hook.is_file():
        return Check("git hooks", WARN, "`git push mlops main` does not run pipelines yet",
                     "mlops ci hooks install")
    return Check("git hooks", OK, f"post-receive hook in {hook.parent.parent}")


def production_check() -> Check:
    """helm and a cluster for production; without them production runs in GitOps mode."""
    from ml_service.deploy.production import cluster_mode

    available, why = cluster_mode()
    if available:
        return Check("production", OK, "helm and a reachable cluster: releases are applied")
    return Check("production", WARN, f"GitOps mode ({why}): the desired state is committed, nothing is applied",
                 "for a cluster: point KUBECONFIG at it (helm and kubectl come with `make install`)")


def schema_errors(data: object, limit: int = 3) -> list[str]:
    """The first errors of mlops.yml's content against ml_service/mlops.schema.json, each with its key path."""
    import json

    import jsonschema

    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    found = sorted(validator.iter_errors(data), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    return [f"{key_path(error.absolute_path) or '(top level)'}: {error.message}" for error in found[:limit]]


def key_path(parts) -> str:
    """['environments', 'qa', 'approval', 'approvers', 1] as environments.qa.approval.approvers[1]."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def config_check(settings: Settings) -> Check:
    """mlops.yml against its JSON Schema (the one editors use), the first errors with their key path."""
    from ml_service.config import CONFIG_FILE, read_config

    path = settings.root / CONFIG_FILE
    errors = schema_errors(read_config(path))
    if errors:
        return Check("mlops.yml", FAIL, f"{path}: {'; '.join(errors)}", f"fix {CONFIG_FILE} (schema: {SCHEMA})")
    return Check("mlops.yml", OK, f"{path} matches {SCHEMA.name}")


def run_checks(settings: Settings) -> list[Check]:
    """Every check, in the order the flow needs them."""
    docker, client = docker_check(settings)
    return [config_check(settings), python_check(), venv_check(settings), docker, base_image_check(settings, client),
            disk_check(settings), workspace_check(settings), git_check(settings), production_check()]


def can_bootstrap() -> str | None:
    """How to run a bootstrap script here: "" as root, "sudo" when sudo needs no password, else None."""
    if os.geteuid() == 0:
        return ""
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        return "sudo"
    return None


def bootstrap(settings: Settings, check: Check, how: str) -> bool:
    """Run the check's bootstrap script; True when it succeeded."""
    script = settings.root / "environment_setup" / check.script
    argv = ([how] if how else []) + ["bash", str(script)]
    if check.script == "base_image.sh":
        argv.append(settings.base_image)
    print(f"  setting up {check.name}: {' '.join(argv)}", flush=True)
    return subprocess.run(argv).returncode == 0
