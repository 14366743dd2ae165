"""`deploy prod` in-process, so that the mutation tester sees production.py: a project root of its own (a copy of
the chart), a real MLflow store (copied from an empty one), the real helm, real git. Without a cluster (kubectl
cluster-info fails) the desired state is validated offline, committed with its provenance and recorded as desired,
the alias left alone; a state that fails validation commits nothing; a running canary blocks another version.
With the FAKE API server of tests/support/fakes (only what needs a cluster is fake) a helm upgrade is recorded
live and moves the alias, a failed upgrade or smoke test is recorded failed and moves nothing."""
from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys

import pytest
import yaml

from ml_service.config import load_settings
from ml_service.deploy import gitops, production, records
from ml_service.deploy.digest import PinnedImage
from ml_service.deploy.production import DeployError, ProductionResult, ProductionState
from tests.conftest import ROOT, fresh_store

pytestmark = [pytest.mark.integration]
NAME = "production_test_model"
FAKES = ROOT / "tests" / "support" / "fakes"
NO_CLUSTER = "no reachable Kubernetes cluster (kubectl cluster-info failed)"


def git(repo, *args) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project root of its own (mlops.yml, a copy of the chart) on a fresh store; kubectl finds no cluster."""
    root = tmp_path / "root"
    shutil.copytree(ROOT / "charts", root / "charts")
    (root / "proj").mkdir()
    (root / "mlops.yml").write_text(f"models:\n  - {{project: proj, name: {NAME}}}\n")
    uri = fresh_store(tmp_path / "mlflow.db")
    for key, value in {"MLOPS_ROOT": str(root), "MLOPS_STATE_DIR": str(tmp_path / "ws"), "MLOPS_TRACKING_URI": uri,
                       "MLFLOW_DISABLE_TELEMETRY": "true", "MLOPS_KUBECTL": "/bin/false"}.items():
        monkeypatch.setenv(key, value)
    for key in ("MLOPS_ARTIFACT_ROOT", "MLOPS_MODEL", "MLOPS_MODEL_NAME", "MLOPS_EXPERIMENT", "MLOPS_HELM",
                "MLOPS_IMAGE_REGISTRY", "MLOPS_USER", "MLOPS_BUILD_ID", "MLOPS_BUILD_URI"):
        monkeypatch.delenv(key, raising=False)
    return load_settings()


@pytest.fixture
def client(project):
    from ml_service.workspace.tracking import connect

    client = connect(project)
    client.create_registered_model(NAME)
    client.create_model_version(NAME, "file:///nowhere/model", tags={"BuildId": "41", "BuildUri": "http://ci/41"})
    client.create_model_version(NAME, "file:///nowhere/model")
    return client


def alias(client, name="production"):
    return {a: str(v) for a, v in client.get_registered_model(NAME).aliases.items()}.get(name)


def gitops_repo(project):
    return project.state_dir / "gitops"


def test_gitops_mode_commits_the_validated_state_with_its_provenance_and_moves_no_alias(project, client):
    repo = gitops_repo(project)
    values_file = str(repo / "production" / NAME / "values-prod.yaml")
    result = production.deploy_prod(project, f"{NAME}:1", who="lead@example.com")
    head = git(repo, "rev-parse", "HEAD")
    assert result == ProductionResult("gitops", False, (
        f"GitOps mode ({NO_CLUSTER}): desired state for {NAME} version 1 (image mlops/{NAME}:1) validated offline "
        f"and committed in {values_file} (rendered manifests.yaml beside it) at commit {head[:12]}.\n"
        "NOTHING WAS APPLIED TO A CLUSTER; the 'production' alias was not moved."), head, values_file)
    assert git(repo, "log", "-1", "--format=%s%n%n%b%ae") == (
        f"production: {NAME} version 1\n\n"
        f"Model: {NAME} version 1\n"
        f"Image: mlops/{NAME}:1 (a tag, not a digest: no registry configured, deploy.registry in mlops.yml)\n"
        "Trained by pipeline run: 41 (http://ci/41)\n"
        "Deployed by pipeline run: none (run by hand)\n"
        "Approved by: lead@example.com\n"
        "lead@example.com")
    values = yaml.safe_load(git(repo, "show", f"HEAD:production/{NAME}/values-prod.yaml"))
    assert values["image"] == {"repository": f"mlops/{NAME}", "tag": "1"}
    assert values["model"] == {"name": NAME, "version": "1"}
    assert git(repo, "ls-tree", "--name-only", "HEAD", f"production/{NAME}/").split() == [
        f"production/{NAME}/manifests.yaml", f"production/{NAME}/values-prod.yaml"]
    assert alias(client) is None
    [recorded] = records.list_deployments(project, "production")
    assert (recorded.model_name, recorded.version, recorded.image, recorded.url, recorded.status, recorded.mode,
            recorded.target, recorded.detail) == (
        NAME, "1", f"mlops/{NAME}:1", "", records.DESIRED, "gitops", values_file,
        f"desired state committed at {head[:12]}; not applied: {NO_CLUSTER}")

    again = production.deploy_prod(project, f"{NAME}:1")  # the same state again: no new commit
    assert (again.commit, git(repo, "rev-parse", "HEAD")) == (head, head)
    assert f"validated offline and unchanged in {values_file}" in again.message
    latest = records.list_deployments(project, "production")[0]
    assert latest.detail.startswith(f"desired state unchanged at {head[:12]}")

    second = production.deploy_prod(project, f"{NAME}:2")
    assert second.commit == git(repo, "rev-parse", "HEAD") != head
    assert git(repo, "log", "-1", "--format=%b").splitlines()[2:5] == [
        "Trained by pipeline run: none recorded", "Deployed by pipeline run: none (run by hand)",
        "Approved by: nobody recorded"]
    assert records.live_versions(project, NAME) == {"2": {"production (desired state)"}}


def break_the_chart(root) -> None:
    """A template that helm renders but Kubernetes refuses: an unknown field in the Deployment's spec."""
    template = root / "charts" / "scoring" / "templates" / "deployment.yaml"
    text = template.read_text()
    assert "\nspec:\n" in text
    template.write_text(text.replace("\nspec:\n", "\nspec:\n  replicaz: 2\n", 1))


def test_a_state_that_fails_offline_validation_is_refused_and_nothing_is_committed(project, client):
    break_the_chart(project.root)
    with pytest.raises(DeployError, match="the production state is invalid: .*replicaz"):
        production.deploy_prod(project, f"{NAME}:1", who="lead@example.com")
    assert not gitops_repo(project).exists()
    assert records.list_deployments(project) == [] and alias(client) is None


def test_a_running_canary_blocks_another_version(project, client):
    stable = {"image": {"repository": "r", "tag": "1"}, "model": {"name": NAME, "version": "1"},
              "canary": {"weight": 20}}
    canary = {"image": {"repository": "r", "tag": "2"}, "model": {"name": NAME, "version": "2"}}
    gitops.commit_files(project, NAME, {f"production/{NAME}/values-prod.yaml": yaml.safe_dump(stable),
                                        f"production/{NAME}/values-canary.yaml": yaml.safe_dump(canary)}, "m", "w")
    head = git(gitops_repo(project), "rev-parse", "HEAD")
    with pytest.raises(DeployError) as raised:
        production.deploy_prod(project, f"{NAME}:2")
    assert str(raised.value) == (f"a canary of {NAME} version 2 takes 20% of production: `mlops deploy promote` or "
                                 "`mlops deploy abort` it before deploying another version")
    assert git(gitops_repo(project), "rev-parse", "HEAD") == head and records.list_deployments(project) == []
    # without the canary the same deploy goes ahead
    gitops.commit_files(project, NAME, {f"production/{NAME}/values-canary.yaml": None}, "m", "w")
    assert production.deploy_prod(project, f"{NAME}:2").mode == "gitops"


def test_an_invalid_state_is_never_committed_and_where_names_the_branch(project, client, tmp_path):
    bad = production.desired_values(project, NAME, "1")
    bad["replicaCount"] = 0  # values.schema.json: minimum 1
    with pytest.raises(DeployError, match="^the production state is invalid: "):
        production.commit_desired_state(project, bad, "w")
    assert not (gitops_repo(project) / "production").exists()
    repo = tmp_path / "state.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(repo)], check=True)
    branch = dataclasses.replace(project, environments={"production": {"gitops": {
        "repo": str(repo), "branch": "prod-state", "values_file": "v/{model}.yaml"}}})
    good = production.desired_values(branch, NAME, "1")
    where, commit, state = production.commit_desired_state(branch, good, "a@b")
    assert (where, commit, state) == (f"{repo} (branch prod-state) v/{NAME}.yaml", git(repo, "rev-parse", "prod-state"),
                                      "committed")
    assert git(repo, "log", "-1", "--format=%B", commit) == f"production: {NAME} version 1"  # no body: the subject
    assert git(repo, "ls-tree", "--name-only", commit, "v/").split() == ["v/manifests.yaml", f"v/{NAME}.yaml"]
    assert production.commit_desired_state(branch, good, "a@b") == (where, commit, "unchanged")
    both = ProductionState(good, production.desired_values(branch, NAME, "2"))
    where, second, state = production.commit_state(branch, both, "c@d", "with a canary")
    assert state == "committed" and git(repo, "log", "-1", "--format=%s|%ae", second) == "with a canary|c@d"
    assert "values-canary.yaml" in git(repo, "ls-tree", "--name-only", second, "v/")


def test_provenance_says_what_is_known_and_that_the_rest_is_not():
    values = {"image": {"repository": "reg/m", "tag": 3, "digest": "sha256:" + "a" * 64},
              "model": {"name": NAME, "version": "3"}}
    settings = load_settings()
    ci = dataclasses.replace(settings, build_id="77", build_uri="http://ci/77")
    assert production.provenance(ci, values, {"BuildId": "70"}, "boss@example.com") == (
        f"Model: {NAME} version 3\n"
        f"Image: {PinnedImage('reg/m', '3', 'sha256:' + 'a' * 64).describe()}\n"
        "Trained by pipeline run: 70\n"
        "Deployed by pipeline run: 77 (http://ci/77)\n"
        "Approved by: boss@example.com\n")
    assert "Image: reg/m@sha256:" + "a" * 64 + " (pushed as tag 3)\n" in production.provenance(ci, values, {}, "")
    bare = dataclasses.replace(settings, build_id="", build_uri="")
    text = production.provenance(bare, values, {"BuildUri": "http://ci/1"}, "")
    assert "Trained by pipeline run: none recorded (http://ci/1)\n" in text
    assert "Deployed by pipeline run: none (run by hand)\nApproved by: nobody recorded\n" in text


def test_the_gitops_message_says_nothing_was_applied():
    assert production.gitops_message("why", "what", "where", "0123456789abcdef", "committed") == (
        "GitOps mode (why): what validated offline and committed in where (rendered manifests.yaml beside it) at "
        "commit 0123456789ab.\nNOTHING WAS APPLIED TO A CLUSTER; the 'production' alias was not moved.")
    assert ProductionResult("gitops", False, "m") == ProductionResult("gitops", False, "m", "", "")


@pytest.fixture
def fake_cluster(project, tmp_path, monkeypatch):
    """The FAKE API server (tests/support/fakes): helm upgrade, status, get values and rollback keep releases
    in a folder; the real helm renders."""
    from ml_service.deploy.chart import helm_binary

    real_helm = helm_binary()
    log = tmp_path / "calls.log"
    for key, value in {"MLOPS_HELM": str(FAKES / "helm"), "MLOPS_KUBECTL": str(FAKES / "kubectl"),
                       "FAKE_LOG": str(log), "FAKE_PYTHON": sys.executable, "FAKE_REAL_HELM": real_helm,
                       "FAKE_STATE": str(tmp_path / "cluster")}.items():
        monkeypatch.setenv(key, value)
    return log


def test_cluster_mode_records_a_live_release_and_moves_the_alias(project, client, fake_cluster):
    release = production.release_name(project, NAME)
    result = production.deploy_prod(project, f"{NAME}:1", smoke_timeout=None)
    assert result == ProductionResult("helm", True, (
        f"production now serves {NAME} version 1 (helm release {release}, image mlops/{NAME}:1, smoke test "
        "passed); alias 'production' moved"))
    assert f"helm upgrade --install {release} " in fake_cluster.read_text()
    applied = (project.state_dir / "deploy" / release / "values.yaml").read_text()  # what helm was given
    assert f"# Apply with: helm upgrade --install {release} charts/scoring -f <this file>" in applied
    assert yaml.safe_load(applied)["model"] == {"name": NAME, "version": "1"}
    assert alias(client) == "1"
    [live] = records.list_deployments(project, "production")
    assert (live.model_name, live.version, live.status, live.mode, live.target, live.image, live.url) == (
        NAME, "1", records.LIVE, "helm", release, f"mlops/{NAME}:1", "")
    assert not gitops_repo(project).exists()  # cluster mode commits no desired state


def test_cluster_mode_records_a_failed_upgrade_and_moves_nothing(project, client, fake_cluster, monkeypatch):
    production.deploy_prod(project, f"{NAME}:1", smoke_timeout=None)
    monkeypatch.setenv("FAKE_HELM_FAIL", "upgrade")
    with pytest.raises(DeployError, match="helm upgrade failed"):
        production.deploy_prod(project, f"{NAME}:2", smoke_timeout=None)
    assert alias(client) == "1"
    failed, live = records.list_deployments(project, "production")
    assert (failed.model_name, failed.version, failed.status, failed.mode, failed.target, failed.image,
            failed.url) == (NAME, "2", records.FAILED, "helm", "", f"mlops/{NAME}:2", "")
    assert failed.detail.startswith("helm upgrade failed") and (live.version, live.status) == ("1", records.LIVE)


def test_cluster_mode_runs_the_smoke_test_it_is_given(project, client, fake_cluster, monkeypatch):
    monkeypatch.setenv("FAKE_SERVICE", "broken")
    with pytest.raises(DeployError, match="smoke test through the service failed"):
        production.deploy_prod(project, f"{NAME}:1", smoke_timeout=1)
    assert "port-forward" in fake_cluster.read_text() and alias(client) is None
    assert [d.status for d in records.list_deployments(project, "production")] == [records.FAILED]


def test_a_canary_running_on_the_cluster_blocks_another_version(project, client, fake_cluster):
    from ml_service.deploy import cluster

    route = {"enabled": True, "parentRefs": [{"name": "ml-gateway"}], "hostnames": ["scoring.example.com"]}
    stable = {**production.desired_values(project, NAME, "1"), "route": route, "canary": {"weight": 20}}
    canary = {**production.desired_values(project, NAME, "2"), "canary": {"enabled": True}}
    for release, values in ((production.release_name(project, NAME), stable),
                            (production.canary_release(project, NAME), canary)):
        cluster.apply(project, release, production.values_text(values, release), None)
    with pytest.raises(DeployError, match=f"^a canary of {NAME} version 2 takes 20% of production: "):
        production.deploy_prod(project, f"{NAME}:1", smoke_timeout=None)
    assert records.list_deployments(project) == [] and alias(client) is None


def test_with_a_registry_an_image_it_does_not_hold_is_never_committed(project, client):
    from ml_service.errors import MLOpsError

    pinned = dataclasses.replace(project, image_registry="127.0.0.1:1")  # a registry that holds nothing
    with pytest.raises(MLOpsError) as raised:  # DeployError (not in the registry) or ImageError (no Docker engine)
        production.deploy_prod(pinned, f"{NAME}:1")
    assert "127.0.0.1:1" in str(raised.value) or "Docker" in str(raised.value)
    assert not gitops_repo(project).exists() and records.list_deployments(project) == []
