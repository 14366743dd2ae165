"""What is really live: deployment records checked against the running containers, and whether an
environment serves the champion (the desired state a release converges on)."""
from __future__ import annotations

from dataclasses import dataclass

from ml_service.config import Settings
from ml_service.deploy import records

RUNNING, STOPPED, MISSING = "running", "stopped", "missing"


@dataclass(frozen=True)
class EnvironmentState:
    """An environment of one model: the champion, what serves, and whether they agree."""

    environment: str
    model: str
    champion: str | None  # version holding the `champion` alias
    live: str | None  # version live there (checked), or None
    detail: str

    @property
    def in_sync(self) -> bool:
        """True when the environment serves the champion (or there is no champion to serve)."""
        return self.champion is None or self.champion == self.live

    def as_dict(self) -> dict:
        """For --json."""
        return {"environment": self.environment, "model": self.model, "champion": self.champion,
                "live": self.live, "in_sync": self.in_sync, "detail": self.detail,
                "release": f"{self.model}:{self.champion}" if not self.in_sync else None}


def container_state(deployment: records.Deployment, client=None) -> str:
    """running | stopped | missing for a Docker deployment; raises ImageError when no engine answers."""
    from docker.errors import NotFound

    from ml_service.containers import docker_client

    client = client or docker_client()
    try:
        container = client.containers.get(deployment.target)
    except NotFound:
        return MISSING
    return RUNNING if container.status == "running" else STOPPED


def checked(rows: list[records.Deployment]) -> list[tuple[records.Deployment, str]]:
    """Each deployment with what is true now: live records of Docker deployments are checked against
    the engine ("live", or "down: <state>"); others keep their recorded status."""
    from ml_service.containers import ImageError, docker_client

    client, why = None, ""
    out = []
    for deployment in rows:
        status = deployment.status
        if status == records.LIVE and deployment.mode == "docker":
            if client is None and not why:
                try:
                    client = docker_client()
                except ImageError:
                    why = "unchecked: no Docker engine answers"
            state = container_state(deployment, client) if client is not None else why
            status = records.LIVE if state == RUNNING else f"down: {state}"
        out.append((deployment, status))
    return out


def environment_state(settings: Settings, environment: str) -> EnvironmentState:
    """Does the environment serve the selected model's champion, really?"""
    from ml_service.workspace import registry, tracking

    name = settings.model_name
    champion = registry.get_alias(tracking.connect(settings), name, registry.CHAMPION)
    champion_version = str(champion.version) if champion is not None else None
    deployment = records.current(settings, environment, name)
    if deployment is None:
        return EnvironmentState(environment, name, champion_version, None, "nothing deployed")
    status = checked([deployment])[0][1]
    if status != records.LIVE:
        return EnvironmentState(environment, name, champion_version, None,
                                f"version {deployment.version} recorded live but {status}")
    return EnvironmentState(environment, name, champion_version, deployment.version,
                            f"version {deployment.version} live at {deployment.url or deployment.target}")
