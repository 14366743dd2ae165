"""Docker and Python packaging shared by every image the platform builds (scoring images, the training
image of the docker compute target): the engine client, the offline base image, pinned package closures
and the host-built wheelhouse. One home for these; deploy/image.py and pipelines/docker_compute.py use it.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import shutil
import subprocess
import sys
from pathlib import Path

from ml_service.config import Settings
from ml_service.errors import MLOpsError


class ImageError(MLOpsError):
    """An image could not be built; the message says which part failed."""


def docker_client():
    """A Docker SDK client, with a clear error when no engine answers."""
    import docker
    from docker.errors import DockerException

    try:
        client = docker.from_env(timeout=300)
        client.ping()
        return client
    except DockerException as exc:
        raise ImageError(f"no Docker engine answers ({exc}); start one with environment_setup/docker_engine.sh") \
            from None


def ensure_base_image(settings: Settings, client) -> None:
    """Build the offline base image once, if it is missing."""
    from docker.errors import ImageNotFound

    try:
        client.images.get(settings.base_image)
    except ImageNotFound:
        script = settings.root / "environment_setup" / "base_image.sh"
        result = subprocess.run(["bash", str(script), settings.base_image], capture_output=True, text=True)
        if result.returncode != 0:
            raise ImageError(f"building the base image {settings.base_image} failed:\n{result.stderr[-2000:]}")


def pinned_closure(names: list[str]) -> str:
    """name==version lines for names and everything they depend on, at the versions installed here."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pinned: dict[str, str] = {}
    todo = list(names)
    while todo:
        name = todo.pop()
        key = canonicalize_name(name)
        if key in pinned:
            continue
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            if name in names:
                raise ImageError(f"package {name} is not installed here; run `make install` or add it to "
                                 "the project's dependencies") from None
            continue
        pinned[key] = distribution.version
        for raw in distribution.requires or []:
            requirement = Requirement(raw)
            if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
                continue
            todo.append(requirement.name)
    return "".join(f"{name}=={version}\n" for name, version in sorted(pinned.items()))


def wheelhouse_cache() -> Path:
    """Shared by every workspace on this machine: its content depends only on the requirements."""
    from ml_service import env as envvars

    base = Path(envvars.XDG_CACHE_HOME.get() or Path.home() / ".cache")
    return base / "mlops-template" / "wheelhouse"


def runtime_closure() -> str:
    """Pinned requirements of everything the project needs at run time (its dependency closure)."""
    from packaging.utils import canonicalize_name

    lines = pinned_closure(["mlops-template"]).splitlines(keepends=True)
    return "".join(line for line in lines if not line.startswith(canonicalize_name("mlops-template") + "=="))


def ensure_wheelhouse(settings: Settings, text: str, resolve: bool = True) -> Path:
    """Wheels for pinned requirements (requirements.txt text), downloaded once per set of versions."""
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    target = wheelhouse_cache() / digest
    if (target / "requirements.txt").is_file():
        return target
    partial = target.with_name(digest + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    (partial / "requirements.txt").write_text(text)
    result = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:",
                             *([] if resolve else ["--no-deps"]), "--dest", str(partial),
                             "-r", str(partial / "requirements.txt")], capture_output=True, text=True)
    if result.returncode != 0:
        raise ImageError(f"pip download of the wheels failed:\n{result.stderr[-2000:]}")
    partial.rename(target)
    return target
