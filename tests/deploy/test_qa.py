"""QA on a real Docker engine (qa.py, image.py): build the image, run it, smoke-test it, replace it safely. The `qa`
alias moves only when QA serves the version: a broken image leaves both the container and the alias."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ml_service.config import load_settings
from tests.conftest import ROOT, workspace_env
from tests.support.cli import run_cli

pytestmark = [pytest.mark.integration, pytest.mark.docker]
MODEL = "test_qa_model"
KEY = "qa-test-scoring-key-0123456789"
TRAINED_AT = "0123456789abcdef0123456789abcdef01234567"  # a commit that is not this tree's HEAD


def mlops(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ml_service.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=900, env={**os.environ, **(env or {})})


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`mlops` in-process (its entry point): what is tested is the image and the container, not the process."""
    return run_cli(*args, env=env)


@pytest.fixture(scope="module")
def qa(docker_engine, tmp_path_factory):
    """A workspace with version 1 registered and deployed to QA; containers and images removed after."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {**workspace_env(tmp_path_factory.mktemp("qa")), "MLOPS_MODEL_NAME": MODEL}.items():
            patch.setenv(key, value)
        patch.delenv("MLOPS_SCORING_KEYS", raising=False)
        settings = load_settings()
        run = mlops("pipeline", "run")
        assert run.returncode == 0 and f"registered {MODEL} version 1" in run.stdout, run.stderr
        deployed = cli("deploy", "qa", "--model", f"{MODEL}:1")
        assert deployed.returncode == 0, deployed.stderr
        yield settings
    for container in docker_engine.containers.list(all=True, filters={"label": f"mlops.model.name={MODEL}"}):
        container.remove(force=True)
    for image in docker_engine.images.list(name=f"mlops/{MODEL}"):
        docker_engine.images.remove(image.id, force=True)


def qa_containers(docker_engine):
    return docker_engine.containers.list(filters={"label": ["mlops.environment=qa", f"mlops.model.name={MODEL}"]})


def test_the_image_is_versioned_labelled_non_root_and_healthchecked(qa, docker_engine):
    image = docker_engine.images.get(f"mlops/{MODEL}:1")
    config = image.attrs["Config"]
    assert config["Labels"]["mlops.model.version"] == "1" and config["Labels"]["mlops.model.name"] == MODEL
    assert len(config["Labels"]["org.opencontainers.image.revision"]) == 40
    assert config["User"] == "10001"
    assert "/v2/health/live" in " ".join(config["Healthcheck"]["Test"])


def test_qa_runs_exactly_one_container_with_the_qa_limits_on_loopback(qa, docker_engine):
    containers = qa_containers(docker_engine)
    assert len(containers) == 1
    host = containers[0].attrs["HostConfig"]
    assert host["NanoCpus"] == 1_000_000_000 and host["Memory"] == 4096 * 1024 * 1024
    assert host["PortBindings"]["5001/tcp"][0]["HostIp"] == "127.0.0.1"
    assert host["ReadonlyRootfs"] is True  # the service serves (smoke test) on a read-only root filesystem


def test_smoke_test_of_the_qa_environment_passes(qa):
    result = cli("smoke-test", "qa")
    assert result.returncode == 0, result.stderr
    assert "ready, score, v2 infer, malformed request refused" in result.stdout


def test_deploy_list_shows_the_live_version_and_alias_moved(qa):
    listing = cli("deploy", "list").stdout
    assert "qa" in listing and "live" in listing and f"mlops/{MODEL}:1" in listing
    from ml_service.workspace.tracking import connect

    assert str(connect(qa).get_model_version_by_alias(MODEL, "qa").version) == "1"


def test_a_broken_image_does_not_replace_the_healthy_qa_container(qa, docker_engine, tmp_path):
    from ml_service.deploy.image import build_image
    from ml_service.deploy.qa import DeployError, deploy_image
    from ml_service.deploy.smoke import smoke_test

    before = qa_containers(docker_engine)
    (tmp_path / "model.pkl").write_bytes(b"this is not a model")
    broken = build_image(qa, MODEL, "99", tmp_path)
    with pytest.raises(DeployError, match="corrupt or incompatible") as failure:
        deploy_image(qa, broken.tag, MODEL, "99", timeout_s=60)
    assert before[0].name in str(failure.value)  # says what keeps serving
    after = qa_containers(docker_engine)
    assert [c.id for c in after] == [c.id for c in before]
    from ml_service.deploy import records
    from ml_service.workspace.tracking import connect

    assert smoke_test(records.current(qa, "qa").url, timeout_s=10).checks[-1] == "malformed request refused"
    assert records.list_deployments(qa, "qa")[0].status == "failed"
    assert records.current(qa, "qa", MODEL).version == "1"
    assert str(connect(qa).get_model_version_by_alias(MODEL, "qa").version) == "1"  # the alias did not move


def test_auth_on_in_the_container(qa, docker_engine):
    from ml_service.deploy.qa import start_container
    from ml_service.deploy.smoke import SmokeTestError, smoke_test

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_SCORING_KEYS", KEY)
        container, url = start_container(qa, f"mlops/{MODEL}:1", MODEL, "1", environment="auth-test")
    try:
        with pytest.raises(SmokeTestError, match="401"):
            smoke_test(url, timeout_s=10)
        assert smoke_test(url, key=KEY, timeout_s=10).checks[-1] == "malformed request refused"
        assert KEY not in container.logs().decode()
    finally:
        container.remove(force=True)


def test_a_new_model_version_changes_only_the_last_layer(qa, docker_engine, tmp_path):
    import shutil

    from ml_service.deploy.image import build_image, download_model
    from ml_service.workspace.tracking import connect

    model_dir = download_model(connect(qa).get_model_version(MODEL, "1"), tmp_path / "v1")
    other = tmp_path / "other"
    shutil.copytree(model_dir, other)
    (other / "README.txt").write_text("another version of the model\n")
    first = build_image(qa, MODEL, "50", model_dir)
    second = build_image(qa, MODEL, "51", other)
    layers = [docker_engine.images.get(tag).attrs["RootFS"]["Layers"] for tag in (first.tag, second.tag)]
    assert len(layers[0]) == len(layers[1])
    assert layers[0][:-1] == layers[1][:-1]  # base, user, packages, code: shared
    assert layers[0][-1] != layers[1][-1]  # the model layer: new


def test_image_build_pushes_to_a_configured_registry(qa, docker_engine, image_registry):
    import json
    import urllib.request

    result = cli("image", "build", "--model", f"{MODEL}:1", env={"MLOPS_IMAGE_REGISTRY": image_registry})
    assert result.returncode == 0, result.stderr
    assert f"{image_registry}/mlops/{MODEL}:1" in result.stdout
    with urllib.request.urlopen(f"http://{image_registry}/v2/mlops/{MODEL}/tags/list", timeout=10) as response:
        assert json.load(response)["tags"] == ["1"]
    request = urllib.request.Request(f"http://{image_registry}/v2/mlops/{MODEL}/manifests/1", method="HEAD",
                                     headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    with urllib.request.urlopen(request, timeout=10) as response:  # what production pins: the registry's digest
        assert f"(digest {response.headers['Docker-Content-Digest']})" in result.stdout
    docker_engine.images.remove(f"{image_registry}/mlops/{MODEL}:1")  # the tag only: QA still runs the image


def test_a_push_to_an_unreachable_registry_fails_clearly(qa, docker_engine):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        nowhere = f"127.0.0.1:{s.getsockname()[1]}"
    result = cli("image", "build", "--model", f"{MODEL}:1", env={"MLOPS_IMAGE_REGISTRY": nowhere})
    assert result.returncode == 1
    assert f"docker push of {nowhere}/mlops/{MODEL}:1 failed" in result.stderr
    assert "Traceback" not in result.stderr
    docker_engine.images.remove(f"{nowhere}/mlops/{MODEL}:1")


@pytest.fixture(scope="module")
def second_version(qa):
    """Version 2: version 1's files, tagged as trained at another commit than this tree's HEAD."""
    from ml_service.workspace.tracking import connect

    client = connect(qa)
    first = client.get_model_version(MODEL, "1")
    return client.create_model_version(MODEL, first.source, run_id=first.run_id,
                                       tags={**first.tags, "git_commit": TRAINED_AT})


def test_the_revision_label_is_the_commit_that_trained_the_version(second_version, docker_engine):
    """Folded from test_promises_docker.py (issue 19): the image says which commit trained the model, not which
    commit built the image."""
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert head != TRAINED_AT
    built = cli("image", "build", "--model", f"{MODEL}:2")
    assert built.returncode == 0, built.stderr
    labels = docker_engine.images.get(f"mlops/{MODEL}:2").attrs["Config"]["Labels"]
    assert labels["org.opencontainers.image.revision"] == TRAINED_AT
    assert labels["mlops.model.version"] == "2"


def test_a_new_version_replaces_the_qa_container(qa, second_version, docker_engine):
    """Folded from test_promises_docker.py (issue 19): one container, the new version served, the old one removed
    and recorded replaced, the `qa` alias moved. Last in this file: QA serves version 2 after it."""
    import json
    import urllib.request

    from ml_service.deploy import records
    from ml_service.workspace.tracking import connect

    [old] = qa_containers(docker_engine)
    replaced = cli("deploy", "qa", "--model", f"{MODEL}:2")
    assert replaced.returncode == 0, replaced.stderr
    [new] = qa_containers(docker_engine)
    assert new.id != old.id and new.labels["mlops.model.version"] == "2"
    assert not docker_engine.containers.list(all=True, filters={"id": old.id})  # the old container is gone
    port = new.attrs["NetworkSettings"]["Ports"]["5001/tcp"][0]["HostPort"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/models/{MODEL}", timeout=30) as response:
        assert json.loads(response.read())["versions"] == ["2"]  # it serves the new version
    statuses = {(d.version, d.status) for d in records.list_deployments(qa, "qa") if d.model_name == MODEL}
    assert {("1", records.REPLACED), ("2", records.LIVE)} <= statuses
    assert str(connect(qa).get_model_version_by_alias(MODEL, "qa").version) == "2"
    assert cli("smoke-test", "qa").returncode == 0


def test_concurrent_redeploys_take_turns_and_leave_exactly_one_container(qa, second_version, docker_engine):
    """Issue 24, finding 7: redeploys of one model at once (the Studio's button pressed twice, and a release)
    all listed the same old container, all started a new one and then raced to remove the old one: all but one
    failed and two new containers stayed. Now they take turns: each succeeds, one container serves, the
    newest record is the live one and the `qa` alias names what it serves. Runs after the replacement test:
    version 2's image exists."""
    from concurrent.futures import ThreadPoolExecutor

    from ml_service.deploy import qa as qa_deploy
    from ml_service.deploy import records

    with ThreadPoolExecutor(3) as pool:
        done = list(pool.map(lambda _: qa_deploy.deploy_image(qa, f"mlops/{MODEL}:2", MODEL, "2"), range(3)))
    assert [d.status for d in done] == [records.LIVE] * 3
    [serving] = qa_containers(docker_engine)
    assert not [c for c in docker_engine.containers.list(all=True, filters={"label": f"mlops.model.name={MODEL}"})
                if c.id != serving.id]  # nothing left behind, running or not
    live = [d for d in records.list_deployments(qa, "qa") if d.model_name == MODEL and d.status == records.LIVE]
    assert [d.target for d in live] == [serving.name]


def test_the_qa_containers_of_a_model_are_this_workspaces_only(workspace, docker_engine):
    """Two workspaces share one Docker engine: a QA deploy replaces (removes) the containers qa_containers finds,
    so another workspace's QA container of a model of the same name is never among them."""
    import dataclasses

    from ml_service.deploy import qa

    other = dataclasses.replace(workspace, tracking_uri=workspace.tracking_uri + "-another")
    made = []
    try:
        for settings in (workspace, other):
            made.append(docker_engine.containers.create(workspace.base_image, ["true"], labels={
                qa.ENV_LABEL: "qa", "mlops.model.name": "shared_name", "mlops.workspace": qa.workspace_label(settings),
                "mlops.test": "qa-workspaces"}))
        assert [c.id for c in qa.qa_containers(docker_engine, workspace, "shared_name")] == [made[0].id]
        assert [c.id for c in qa.qa_containers(docker_engine, other, "shared_name")] == [made[1].id]
    finally:
        for container in made:
            container.remove(force=True)
