"""The `docker` compute target: a pipeline step runs inside the training image.

The image holds the project's runtime packages (built once per set of pinned versions, offline,
from the local base image and a host-built wheelhouse); the project code, the step's working
folder and the workspace are bind-mounted at the same paths, so the step sees what a local step
sees. The container has no network when the tracking store is local.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

from ml_service.config import Settings
from ml_service.pipelines.compute import ComputeError, ProcessResult

PASSED_ENV = ("MLOPS_", "MLFLOW_", "GX_", "PYTHON")


def ensure_training_image(settings: Settings) -> str:
    """The tag of the training image for the installed package versions, building it if needed."""
    from docker.errors import BuildError, ImageNotFound

    from ml_service.containers import ImageError, docker_client, ensure_base_image, ensure_wheelhouse, \
        runtime_closure

    try:
        client = docker_client()
    except ImageError as exc:
        raise ComputeError(str(exc)) from None
    requirements = runtime_closure()
    tag = f"mlops-training:{hashlib.sha256(requirements.encode()).hexdigest()[:12]}"
    try:
        client.images.get(tag)
        return tag
    except ImageNotFound:
        pass
    ensure_base_image(settings, client)
    context = settings.state_dir / "build" / "training"
    shutil.rmtree(context, ignore_errors=True)
    context.mkdir(parents=True)
    shutil.copy(settings.root / "environment_setup" / "Dockerfile.training", context / "Dockerfile")
    shutil.copytree(ensure_wheelhouse(settings, requirements, resolve=False), context / "wheelhouse")
    try:
        client.images.build(path=str(context), tag=tag, rm=True, forcerm=True,
                            buildargs={"BASE_IMAGE": settings.base_image}, labels={"mlops.image": "training"})
    except BuildError as exc:
        log = "".join(str(chunk.get("stream", chunk.get("error", ""))) for chunk in exc.build_log)
        raise ComputeError(f"building the training image failed: {exc.msg}\n{log[-3000:]}") from None
    finally:
        shutil.rmtree(context, ignore_errors=True)
    return tag


class DockerCompute:
    """Run one step in a container of the training image."""

    name = "docker"

    def __init__(self, settings: Settings, watchdog=None):
        self.settings = settings
        self.watchdog = watchdog

    def _mounts(self, spec_path: Path) -> dict[str, dict]:
        spec = json.loads(spec_path.read_text())
        workdir = spec_path.parents[2]  # <pipeline workdir>/steps/<step>/spec.json
        mounts = {str(self.settings.root): "ro", str(workdir): "rw", str(self.settings.state_dir): "rw"}
        for path in spec["inputs"].values():
            folder = str(Path(path).parent)
            if not any(folder == m or folder.startswith(m + "/") for m in mounts):
                mounts[folder] = "ro"
        return {path: {"bind": path, "mode": mode} for path, mode in mounts.items()}

    def _hidden(self) -> dict[str, str]:
        """Folders of the mounted state dir a step never sees (an empty tmpfs over each): this checkout's secrets
        and, on the machine that hosts the team server, its secrets, PostgreSQL files and artifact store."""
        hidden = (self.settings.state_dir / "secrets", self.settings.state_dir / "team")
        return {str(path): "size=64k,mode=0700" for path in hidden if path.exists()}

    def run(self, spec_path: Path, env: dict[str, str], cwd: Path, log_path: Path, timeout_s: float,
            preloaded: bool = False) -> ProcessResult:
        """Run the step in a fresh container; its output goes to log_path; killed on timeout or interrupt."""
        import requests
        from docker.errors import APIError

        from ml_service.containers import docker_client
        from ml_service.workspace.tracking import is_local_store

        image = ensure_training_image(self.settings)
        client = docker_client()
        environment = {k: v for k, v in env.items() if k.startswith(PASSED_ENV)}
        environment["HOME"] = "/tmp"
        name = f"mlops-step-{os.getpid()}-{time.monotonic_ns()}"
        if self.watchdog is not None:  # listed before it exists: a kill during the start still removes it
            self.watchdog.watch_container(name)
        try:
            container = client.containers.run(
                image, ["python", "-m", "ml_service.pipelines.step_host", str(spec_path)], detach=True,
                name=name, working_dir=str(cwd),
                volumes=self._mounts(Path(spec_path)), tmpfs=self._hidden(), environment=environment,
                user=f"{os.getuid()}:{os.getgid()}", labels={"mlops.kind": "pipeline-step"},
                network_mode="none" if is_local_store(self.settings) else "host",
            )
        except APIError as exc:
            raise ComputeError(f"docker could not start the step: {exc.explanation}") from None
        timed_out = False
        try:
            try:
                code = int(container.wait(timeout=timeout_s)["StatusCode"])
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
                timed_out = True
                container.kill()
                code = int(container.wait(timeout=30)["StatusCode"])
            with open(log_path, "ab") as log:
                log.write(container.logs(stdout=True, stderr=True))
        except BaseException:
            container.remove(force=True)
            raise
        container.remove(force=True)
        if self.watchdog is not None:
            self.watchdog.release_container(name)
        return ProcessResult(-9 if code == 137 else code, timed_out=timed_out)
