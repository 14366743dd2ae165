"""Release promises on a real Docker engine (issue 19): the image's revision label is the commit that trained
the version (not the tree's HEAD), and a new version replaces the QA container: one container, the new
version served, the old one recorded replaced, the `qa` alias moved."""
from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import pytest

from ml_service.config import load_settings
from tests.conftest import ROOT, workspace_env

pytestmark = [pytest.mark.integration, pytest.mark.docker]
MODEL = "test_promises_model"
TRAINED_AT = "0123456789abcdef0123456789abcdef01234567"  # a commit that is not this tree's HEAD


def mlops(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ml_service.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=900)


@pytest.fixture(scope="module")
def release(docker_engine, tmp_path_factory):
    """Version 1 from a real pipeline run, version 2 of the same files tagged with another commit."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {**workspace_env(tmp_path_factory.mktemp("promises")), "MLOPS_MODEL_NAME": MODEL}.items():
            patch.setenv(key, value)
        for key in ("MLOPS_SCORING_KEYS", "MLOPS_TRACKING_URI", "MLOPS_IMAGE_REGISTRY"):
            patch.delenv(key, raising=False)
        settings = load_settings()
        run = mlops("pipeline", "run")
        assert run.returncode == 0 and f"registered {MODEL} version 1" in run.stdout, run.stderr
        from ml_service.workspace.tracking import connect

        client = connect(settings)
        first = client.get_model_version(MODEL, "1")
        client.create_model_version(MODEL, first.source, run_id=first.run_id,
                                    tags={**first.tags, "git_commit": TRAINED_AT})
        yield settings
    for container in docker_engine.containers.list(all=True, filters={"label": f"mlops.model.name={MODEL}"}):
        container.remove(force=True)
    for image in docker_engine.images.list(name=f"mlops/{MODEL}"):
        docker_engine.images.remove(image.id, force=True)


def test_the_revision_label_is_the_commit_that_trained_the_version(release, docker_engine):
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert head != TRAINED_AT
    built = mlops("image", "build", "--model", f"{MODEL}:2")
    assert built.returncode == 0, built.stderr
    labels = docker_engine.images.get(f"mlops/{MODEL}:2").attrs["Config"]["Labels"]
    assert labels["org.opencontainers.image.revision"] == TRAINED_AT
    assert labels["mlops.model.version"] == "2"


def qa_containers(docker_engine):
    return docker_engine.containers.list(filters={"label": ["mlops.environment=qa", f"mlops.model.name={MODEL}"]})


def test_a_new_version_replaces_the_qa_container(release, docker_engine):
    from ml_service.deploy import records
    from ml_service.workspace.tracking import connect

    assert mlops("deploy", "qa", "--model", f"{MODEL}:1").returncode == 0
    [old] = qa_containers(docker_engine)
    replaced = mlops("deploy", "qa", "--model", f"{MODEL}:2")
    assert replaced.returncode == 0, replaced.stderr
    [new] = qa_containers(docker_engine)
    assert new.id != old.id and new.labels["mlops.model.version"] == "2"
    assert not docker_engine.containers.list(all=True, filters={"id": old.id})  # the old container is gone
    port = new.attrs["NetworkSettings"]["Ports"]["5001/tcp"][0]["HostPort"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/models/{MODEL}", timeout=30) as response:
        assert json.loads(response.read())["versions"] == ["2"]  # it serves the new version
    statuses = {(d.version, d.status) for d in records.list_deployments(release, "qa") if d.model_name == MODEL}
    assert {("1", records.REPLACED), ("2", records.LIVE)} <= statuses
    assert str(connect(release).get_model_version_by_alias(MODEL, "qa").version) == "2"
    assert mlops("smoke-test", "qa").returncode == 0
