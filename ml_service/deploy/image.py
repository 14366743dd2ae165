"""Scoring images: `mlops image build --model NAME:VERSION`.

The build context is assembled under .mlops/build/: the Dockerfile, a wheelhouse built on the
host (the exact package versions of this environment, so the pickled model loads the same),
the serving code, and the model version's files, downloaded from the registry.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ml_service.config import Settings
from ml_service.containers import (ImageError, docker_client, ensure_base_image, ensure_wheelhouse,
                                   pinned_closure)

# What the scoring service itself needs; the model adds its own (its MLflow requirements.txt).
SERVICE_PACKAGES = ["numpy", "pandas", "pyyaml", "uvicorn", "httptools", "uvloop", "click", "h11",
                    "prometheus-client"]
# Served without a score module, a model is loaded with mlflow.pyfunc: the light MLflow distribution.
PYFUNC_PACKAGES = ["mlflow-skinny"]
# The platform code a scoring container runs; the model project's scoring package is added to it.
SERVICE_PATHS = ["ml_service/__init__.py", "ml_service/env.py", "ml_service/errors.py", "ml_service/serving"]


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
    digest: str = ""  # sha256:... the registry answered to the push


def image_repository(settings: Settings, model_name: str) -> str:
    """mlops/<model name>, under the configured registry if any."""
    repo = f"mlops/{model_name.lower()}"
    return f"{settings.image_registry.rstrip('/')}/{repo}" if settings.image_registry else repo


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
    dockerfile = settings.root / "environment_setup" / "Dockerfile.scoring"
    if not dockerfile.is_file():
        raise ImageError(f"no scoring image recipe at {dockerfile}: the platform's environment_setup/ is "
                         "missing from this checkout (restore it from the template)")
    shutil.copy(dockerfile, dest / "Dockerfile")
    own_module = settings.model.score_module if settings.models else ""
    shutil.copytree(ensure_wheelhouse(settings, requirements(model_dir, own_module)), dest / "wheelhouse")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "tests")
    for rel in app_paths(settings):
        source, target = settings.root / rel, dest / "app" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=ignore, dirs_exist_ok=True)  # a package's __init__ may be there
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
    pushed = digest = ""
    if push and settings.image_registry:
        try:
            for line in client.images.push(image_repository(settings, model_name), tag=str(version), stream=True,
                                           decode=True):
                if "error" in line:
                    raise ImageError(f"docker push of {tag} failed: {line['error']}")
                digest = (line.get("aux") or {}).get("Digest") or digest
        except APIError as exc:
            raise ImageError(f"docker push of {tag} failed: {exc.explanation}") from None
        pushed = tag
    return BuiltImage(tag, model_name, str(version), image.id, int(image.attrs.get("Size", 0)),
                      time.monotonic() - started, pushed, digest)


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
    """The files of a registered model version, in dest/model; refused when the version cannot be traced to a
    trusted writer (workspace/provenance.py: its files are loaded, i.e. unpickled, after this)."""
    import mlflow
    import mlflow.artifacts

    from ml_service.workspace import provenance

    provenance.check_for_settings(mlflow.MlflowClient(), version, mlflow.get_tracking_uri())
    return Path(mlflow.artifacts.download_artifacts(f"models:/{version.name}/{version.version}",
                                                    dst_path=str(dest / "model")))
