"""QA deployment: exactly one scoring container on the local Docker engine, published on 127.0.0.1.

The new container must answer its readiness probe before the previous QA container is removed;
if it never does, it is removed instead and the previous one keeps serving.
"""
from __future__ import annotations

import time
from pathlib import Path

import yaml

from ml_service import env as envvars
from ml_service.config import Settings
from ml_service.deploy import records
from ml_service.deploy.image import build_for_version, docker_client
from ml_service.deploy.smoke import SmokeTestError, wait_ready
from ml_service.errors import MLOpsError

CONTAINER_PORT = "5001/tcp"
ENV_LABEL = "mlops.environment"


class DeployError(MLOpsError):
    """A deployment did not happen; what was serving before still serves."""


def qa_limits(settings: Settings) -> tuple[float, float]:
    """(cpus, memory GB) from the model project's deployment_config_qa.yml."""
    path = settings.root / settings.project / "scoring" / "deployment_config_qa.yml"
    try:
        config = yaml.safe_load(Path(path).read_text())["containerResourceRequirements"]
        return float(config["cpu"]), float(config["memoryInGB"])
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
        raise DeployError(f"{path}: cannot read containerResourceRequirements cpu/memoryInGB: {exc}") from None


def workspace_label(settings: Settings) -> str:
    """Identifies the workspace a container belongs to (several can share one Docker engine)."""
    import hashlib

    return hashlib.sha256(settings.tracking_uri.encode()).hexdigest()[:16]


def qa_containers(client, settings: Settings, model_name: str):
    """Containers of this workspace's QA environment for this model (running or not)."""
    return client.containers.list(all=True, filters={"label": [
        f"{ENV_LABEL}=qa", f"mlops.model.name={model_name}", f"mlops.workspace={workspace_label(settings)}"]})


def start_container(settings: Settings, image: str, model_name: str, version: str, environment: str = "qa",
                    timeout_s: float = 120.0):
    """Start one container of image and wait until it is ready; return (container, url)."""
    from docker.errors import APIError, ImageNotFound

    client = docker_client()
    cpus, memory_gb = qa_limits(settings)
    environment_vars = {}
    if envvars.MLOPS_SCORING_KEYS.is_set():  # a secret: passed through, never recorded
        environment_vars[envvars.MLOPS_SCORING_KEYS.name] = envvars.MLOPS_SCORING_KEYS.get()
    from ml_service.monitor.config import collection_mount

    volumes, collect_env = collection_mount(settings, environment, model_name)  # inputs for `mlops monitor drift`
    environment_vars.update(collect_env)
    name = f"mlops-{environment}-{model_name.lower()}-v{version}-{int(time.time() * 1000)}"
    try:
        container = client.containers.run(
            image, name=name, detach=True, ports={CONTAINER_PORT: ("127.0.0.1", None)}, volumes=volumes,
            nano_cpus=int(cpus * 1e9), mem_limit=f"{int(memory_gb * 1024)}m", environment=environment_vars,
            labels={ENV_LABEL: environment, "mlops.model.name": model_name, "mlops.model.version": str(version),
                    "mlops.workspace": workspace_label(settings)},
            restart_policy={"Name": "unless-stopped"},  # back after an engine or machine restart
            read_only=True, tmpfs={"/tmp": "size=64m"},  # as in production: a read-only root filesystem
        )
    except ImageNotFound:
        raise DeployError(f"image {image} not found: build it with `mlops image build`") from None
    except APIError as exc:
        raise DeployError(f"docker could not start {image}: {exc.explanation}") from None
    try:
        container.reload()
        port = container.attrs["NetworkSettings"]["Ports"][CONTAINER_PORT][0]["HostPort"]
        url = f"http://127.0.0.1:{port}"
        _wait(container, url, timeout_s)
        return container, url
    except Exception:
        container.remove(force=True)
        raise


def _wait(container, url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        container.reload()
        if container.status in ("exited", "dead") or container.attrs["RestartCount"] > 0:
            logs = container.logs(tail=20).decode(errors="replace").strip()
            raise DeployError(f"container {container.name} stopped before becoming ready:\n{logs}")
        try:
            wait_ready(url, min(2.0, max(0.5, deadline - time.monotonic())))
            return
        except SmokeTestError as exc:
            if time.monotonic() >= deadline:
                logs = container.logs(tail=20).decode(errors="replace").strip()
                raise DeployError(f"container {container.name} not ready after {timeout_s:.0f}s ({exc}):\n{logs}")


def deploy_image(settings: Settings, image: str, model_name: str, version: str,
                 timeout_s: float = 120.0) -> records.Deployment:
    """Replace the QA container by one running image, only once the new one is ready. One deployment of a
    model at a time (redeploys from the studio and a release at once wait their turn: the last one wins, and
    exactly one container serves)."""
    from ml_service import locks

    with locks.held(settings.state_dir, "qa", settings.tracking_uri, model_name):
        return _replace(settings, image, model_name, version, timeout_s)


def _replace(settings: Settings, image: str, model_name: str, version: str, timeout_s: float) -> records.Deployment:
    from docker.errors import NotFound

    client = docker_client()
    previous = qa_containers(client, settings, model_name)
    try:
        container, url = start_container(settings, image, model_name, version, "qa", timeout_s)
    except DeployError as exc:
        records.record(settings, "qa", model_name, version, image, "", records.FAILED, "docker", detail=str(exc))
        kept = ", ".join(c.name for c in previous if c.status == "running") or "none"
        raise DeployError(f"{exc}\nQA deployment of version {version} failed; still serving: {kept}") from None
    for old in previous:
        try:
            old.remove(force=True)
        except NotFound:  # removed meanwhile (by hand, or by a process of another workspace label)
            pass
    deployment = records.record(settings, "qa", model_name, version, image, url, records.LIVE, "docker",
                                target=container.name)
    from ml_service.workspace import tracking

    tracking.connect(settings).set_registered_model_alias(model_name, "qa", str(version))
    return deployment


def deploy_qa(settings: Settings, ref: str, timeout_s: float = 120.0) -> records.Deployment:
    """Build the image of a registered version if needed and deploy it to QA."""
    built = build_for_version(settings, ref)
    return deploy_image(settings, built.tag, built.model_name, built.model_version, timeout_s)
