"""Production pins its image by digest: a real registry (Debian's docker-registry on 127.0.0.1), a real push
through the Docker engine, then `mlops deploy prod` in GitOps mode (the real kubectl finds no cluster).

The image here is a one-file image made with `docker import` (what is tested is where the digest comes
from and where it goes, not the scoring image; tests/deploy/test_qa.py builds and pushes that).
"""
from __future__ import annotations

import io
import json
import subprocess
import tarfile
import urllib.request

import pytest
import yaml

from ml_service.config import load_settings
from tests.conftest import workspace_env
from tests.support.cli import run_cli

pytestmark = [pytest.mark.integration, pytest.mark.docker]
MODEL = "test_digest_model"


def mlops(*args, env):
    """`mlops` in-process (its entry point; what is tested is the digest, not the process)."""
    return run_cli(*args, env=env)


def one_file_image(docker_engine, tag, text):
    """An image holding one file, imported (no base image, no build), tagged `tag`."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        info = tarfile.TarInfo("model.txt")
        info.size = len(text.encode())
        tar.addfile(info, io.BytesIO(text.encode()))
    repository, version = tag.rsplit(":", 1)
    docker_engine.api.import_image_from_data(data.getvalue(), repository=repository, tag=version)
    return docker_engine.images.get(tag)


def registry_digest(registry, repository, tag):
    """The digest the registry serves for repository:tag (its Docker-Content-Digest header)."""
    path = repository.split("/", 1)[1]
    request = urllib.request.Request(f"http://{registry}/v2/{path}/manifests/{tag}", method="HEAD", headers={
        "Accept": "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers["Docker-Content-Digest"]


@pytest.fixture()
def ws(tmp_path, monkeypatch, docker_engine, image_registry):
    """A workspace with versions 1 and 2 of MODEL registered, and a registry; the images made are removed after."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "none",
        "clusters": [{"name": "none", "cluster": {"server": "https://127.0.0.1:1"}}],
        "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}],
        "users": [{"name": "none", "user": {"token": "none"}}]}))
    env = {**workspace_env(tmp_path / "ws"), "MLOPS_IMAGE_REGISTRY": image_registry, "KUBECONFIG": str(kubeconfig)}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("MLOPS_TRACKING_URI", "MLOPS_MODEL", "MLOPS_MODEL_NAME"):
        monkeypatch.delenv(key, raising=False)
    settings = load_settings()
    from ml_service.workspace.tracking import connect

    client = connect(settings)
    client.create_registered_model(MODEL)
    for _ in range(2):
        client.create_model_version(MODEL, str(tmp_path))
    yield settings
    for image in docker_engine.images.list(name=f"{image_registry}/mlops/{MODEL}"):
        docker_engine.images.remove(image.id, force=True)


def test_production_pins_the_pushed_image_by_digest(ws, docker_engine, image_registry):
    from ml_service.deploy.image import image_repository

    repository = image_repository(ws, MODEL)
    assert repository == f"{image_registry}/mlops/{MODEL}"
    one_file_image(docker_engine, f"{repository}:1", "version 1")
    pushed = [line for line in docker_engine.images.push(repository, tag="1", stream=True, decode=True)]
    assert not any("error" in line for line in pushed), pushed
    digest = registry_digest(image_registry, repository, "1")

    result = mlops("deploy", "prod", "--model", f"{MODEL}:1", env={})
    assert result.returncode == 0, result.stderr
    assert f"image {repository}@{digest}" in result.stdout
    folder = ws.state_dir / "gitops" / "production" / MODEL
    values = yaml.safe_load((folder / "values-prod.yaml").read_text())
    assert values["image"] == {"repository": repository, "tag": "1", "digest": digest}
    objects = [o for o in yaml.safe_load_all((folder / "manifests.yaml").read_text()) if o]
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == f"{repository}@{digest}"
    message = subprocess.run(["git", "-C", str(ws.state_dir / "gitops"), "log", "-1", "--format=%B"],
                             capture_output=True, text=True).stdout
    assert f"Image: {repository}@{digest} (pushed as tag 1)" in message
    listed = json.loads(mlops("deploy", "list", "--json", env={}).stdout)
    assert [r["image"] for r in listed if r["environment"] == "production"] == [f"{repository}@{digest}"]


def test_an_image_missing_from_the_registry_or_not_the_one_built_here_is_refused(ws, docker_engine, image_registry):
    from ml_service.deploy.image import image_repository

    repository = image_repository(ws, MODEL)
    missing = mlops("deploy", "prod", "--model", f"{MODEL}:2", env={})
    assert missing.returncode == 1 and f"image {repository}:2 is not in the registry" in missing.stderr
    assert "mlops image build" in missing.stderr and "Traceback" not in missing.stderr

    one_file_image(docker_engine, f"{repository}:2", "version 2")
    pushed = list(docker_engine.images.push(repository, tag="2", stream=True, decode=True))
    assert not any("error" in line for line in pushed), pushed
    rebuilt = one_file_image(docker_engine, f"{repository}:2", "version 2, rebuilt and not pushed")
    changed = mlops("deploy", "prod", "--model", f"{MODEL}:2", env={})
    assert changed.returncode == 1 and "not the image built here" in changed.stderr, changed.stderr
    assert rebuilt.id[:19] in changed.stderr
    assert not (ws.state_dir / "gitops" / "production" / MODEL).exists()  # nothing committed
