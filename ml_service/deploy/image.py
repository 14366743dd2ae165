"""Scoring images: `mlops image build --model NAME:VERSION`.

The build context is assembled under .mlops/build/: the Dockerfile, a wheelhouse built on the
host (the exact package versions of this environment, so the pickled model loads the same),
the serving code, and the model version's files, downloaded from the registry.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ml_service.config import Settings
from ml_service.errors import MLOpsError

# What the scoring service itself needs; the model adds its own (its MLflow requirements.txt).
SERVICE_PACKAGES = ["numpy", "pandas", "pyyaml", "uvicorn", "httptools", "uvloop", "click", "h11",
                    "prometheus-client"]
# Served without a score module, a model is loaded with mlflow.pyfunc: the light MLflow distribution.
PYFUNC_PACKAGES = ["mlflow-skinny"]
# The platform code a scoring container runs; the model project's scoring package is added to it.
SERVICE_PATHS = ["ml_service/__init__.py", "ml_service/serving"]


class ImageError(MLOpsError):
    """An image could not be built; the message says which part failed."""


@dataclass(frozen=True)
class BuiltImage:
    """A scoring image for one model version."""

    tag: str
    model_name: str
    model_version: str
    id: str
    size_bytes: int
    seconds: float
    pushed: str = ""


def image_repository(settings: Settings, model_name: str) -> str:
    """mlops/<model name>, under the configured registry if any."""
    repo = f"mlops/{model_name.lower()}"
    return f"{settings.image_registry.rstrip('/')}/{repo}" if settings.image_registry else repo


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


def model_requirements(model_dir: Path) -> list[str]:
    """Distribution names the model needs, from its MLflow requirements.txt (MLflow itself left out)."""
    from packaging.requirements import InvalidRequirement, Requirement

    path = Path(model_dir) / "requirements.txt"
    names = []
    if path.is_file():
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if not line or line.startswith("-"):
                continue
            try:
                name = Requirement(line).name
            except InvalidRequirement:
                raise ImageError(f"{path}: cannot read the requirement {line!r}") from None
            if name.lower() not in ("mlflow", "mlflow-skinny"):
                names.append(name)
    return names


def requirements(model_dir: Path | None = None, score_module: str = "x") -> str:
    """Pinned scoring requirements: the service's, the model's, pinned to the versions installed here
    (with their dependencies), so that a pickled model loads in the image as it does here."""
    names = list(SERVICE_PACKAGES)
    if model_dir is not None:
        names += model_requirements(model_dir)
    if not score_module:
        names += PYFUNC_PACKAGES
    return pinned_closure(names)


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
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "mlops-template" / "wheelhouse"


def runtime_closure() -> str:
    """Pinned requirements of everything the project needs at run time (its dependency closure)."""
    from packaging.utils import canonicalize_name

    lines = pinned_closure(["mlops-template"]).splitlines(keepends=True)
    return "".join(line for line in lines if not line.startswith(canonicalize_name("mlops-template") + "=="))


def ensure_wheelhouse(settings: Settings, text: str | None = None, resolve: bool = True) -> Path:
    """Wheels for pinned requirements (default: the service's own), downloaded once per set of versions."""
    text = text or requirements()
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


def app_paths(settings: Settings) -> list[str]:
    """The code the image runs: the scoring service, and the model project's scoring package if it has one."""
    paths = list(SERVICE_PATHS)
    if settings.models and settings.model.score_module:
        package = settings.model.score_module.split(".")
        for depth in range(1, len(package)):
            init = "/".join(package[:depth]) + "/__init__.py"
            if (settings.root / init).is_file():
                paths.append(init)
        paths.append("/".join(package[:-1]) if len(package) > 1 else package[0] + ".py")
    return list(dict.fromkeys(paths))


def score_module(settings: Settings) -> str:
    """The module the image's service hosts: the project's score module, else the pyfunc one."""
    return (settings.model.score_module if settings.models else "") or "ml_service.serving.pyfunc_score"


def assemble_context(settings: Settings, model_dir: Path, dest: Path) -> Path:
    """Write the build context for one model into dest."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    shutil.copy(settings.root / "environment_setup" / "Dockerfile.scoring", dest / "Dockerfile")
    own_module = settings.model.score_module if settings.models else ""
    shutil.copytree(ensure_wheelhouse(settings, requirements(model_dir, own_module)), dest / "wheelhouse")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "tests")
    for rel in app_paths(settings):
        source, target = settings.root / rel, dest / "app" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=ignore)
        else:
            shutil.copy(source, target)
    shutil.copytree(model_dir, dest / "model", ignore=ignore)
    return dest


def build_image(settings: Settings, model_name: str, version: str, model_dir: Path,
                labels: dict[str, str] | None = None, push: bool = True) -> BuiltImage:
    """Build (and push when a registry is configured) the scoring image for one model version."""
    from docker.errors import APIError, BuildError

    client = docker_client()
    ensure_base_image(settings, client)
    started = time.monotonic()
    context = assemble_context(settings, model_dir, settings.state_dir / "build" / f"{model_name}-{version}")
    tag = f"{image_repository(settings, model_name)}:{version}"
    all_labels = {"mlops.model.name": model_name, "mlops.model.version": str(version), **(labels or {})}
    try:
        image, _ = client.images.build(path=str(context), tag=tag, rm=True, forcerm=True, labels=all_labels,
                                       buildargs={"BASE_IMAGE": settings.base_image, "MODEL_NAME": model_name,
                                                  "MODEL_VERSION": str(version),
                                                  "SCORE_MODULE": score_module(settings)})
    except BuildError as exc:
        log = "".join(str(chunk.get("stream", chunk.get("error", ""))) for chunk in exc.build_log)
        raise ImageError(f"docker build of {tag} failed: {exc.msg}\n{log[-3000:]}") from None
    except APIError as exc:
        raise ImageError(f"docker build of {tag} failed: {exc.explanation}") from None
    pushed = ""
    if push and settings.image_registry:
        try:
            for line in client.images.push(image_repository(settings, model_name), tag=str(version), stream=True,
                                           decode=True):
                if "error" in line:
                    raise ImageError(f"docker push of {tag} failed: {line['error']}")
        except APIError as exc:
            raise ImageError(f"docker push of {tag} failed: {exc.explanation}") from None
        pushed = tag
    return BuiltImage(tag, model_name, str(version), image.id, int(image.attrs.get("Size", 0)),
                      time.monotonic() - started, pushed)


def build_for_version(settings: Settings, ref: str) -> BuiltImage:
    """Build the image for a registered version (NAME:VERSION, NAME@ALIAS)."""
    import tempfile

    from ml_service.workspace import registry, tracking

    client = tracking.connect(settings)
    version = registry.resolve_version(client, ref)
    settings = settings.for_registered(version.name)
    with tempfile.TemporaryDirectory(prefix="mlops-model-") as tmp:
        model_dir = download_model(version, Path(tmp))
        labels = {"org.opencontainers.image.revision": version.tags.get("git_commit", ""),
                  "mlops.model.run_id": version.tags.get("run_id", "")}
        return build_image(settings, version.name, str(version.version), model_dir, labels)


def download_model(version, dest: Path) -> Path:
    """The files of a registered model version, in dest/model."""
    import mlflow.artifacts

    return Path(mlflow.artifacts.download_artifacts(f"models:/{version.name}/{version.version}",
                                                    dst_path=str(dest / "model")))
