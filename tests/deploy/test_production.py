"""Production deployment (production.py): GitOps mode for real, cluster mode against a FAKE Kubernetes API server.

No Kubernetes API server can exist on these machines; helm and kubectl can (`make install`). So the
real helm renders, lints and validates everything, and only what needs an API server is faked:
tests/support/fakes/ holds a `helm` that runs the real helm for everything but `upgrade`,
`rollback`, `status`, `get values` and `uninstall` (kept in a folder, with the real helm's exit codes and
messages), and a `kubectl` whose `port-forward` serves the real scoring service with the deployed manifest's
auth, so the smoke test is real HTTP. GitOps mode runs the real kubectl against an unreachable cluster.

The first tests call `deploy_prod` in-process, so that the mutation tester sees production.py: a project root of
its own (a copy of the chart), a real MLflow store (copied from an empty one), the real helm, real git. The last
ones (marked slow) run `mlops` (its entry point, in-process) on a workspace trained by the real pipeline. Without
a cluster (kubectl cluster-info fails) the desired state is validated offline, committed with its provenance and
recorded as desired, the alias left alone; a state that fails validation commits nothing; a running canary blocks
another version.
With the FAKE API server a helm upgrade is recorded live and moves the alias, a failed upgrade or smoke test is
recorded failed and moves nothing.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from ml_service.config import load_settings
from ml_service.deploy import gitops, production, records
from ml_service.deploy.digest import PinnedImage
from ml_service.deploy.production import DeployError, ProductionResult, ProductionState
from ml_service.sections import environments_from
from tests.conftest import ROOT, fresh_store, workspace_env
from tests.support.cli import run_cli

pytestmark = pytest.mark.integration
FAKES = ROOT / "tests" / "support" / "fakes"


# --- in-process: production.py as the mutation tester sees it (first: quick to fail) ---------------------

NAME = "production_test_model"
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
    branch = dataclasses.replace(project, environments=environments_from({"production": {"gitops": {
        "repo": str(repo), "branch": "prod-state", "values_file": "v/{model}.yaml"}}}))
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
    with pytest.raises(DeployError, match="smoke test through the service failed"):  # it ran, and failed
        production.deploy_prod(project, f"{NAME}:1", smoke_timeout=1)
    # not the FAKE kubectl's log: a port-forward ended after the 1 s smoke test may not have started to log yet
    assert f"helm uninstall {production.release_name(project, NAME)} " in fake_cluster.read_text()  # undone
    assert alias(client) is None
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


def test_deploy_prod_refuses_a_desired_state_that_fails_offline_validation(project, client, capsys):
    """Issue 19: `mlops deploy prod` (in-process) refuses a desired state that fails offline validation and
    commits nothing; the same deploy with the chart restored goes ahead."""
    from ml_service.cli import main

    name = NAME
    gitops = project.state_dir / "gitops"
    original = (project.root / "charts" / "scoring" / "templates" / "deployment.yaml").read_text()
    break_the_chart(project.root)
    assert main(["deploy", "prod", "--model", f"{name}:1"]) != 0
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert not (gitops / "production").exists()  # nothing was written, nothing committed
    committed = subprocess.run(["git", "-C", str(gitops), "rev-parse", "-q", "--verify", "HEAD"],
                               capture_output=True, text=True) if gitops.exists() else None
    assert committed is None or committed.returncode != 0
    assert [d.status for d in records.list_deployments(project, "production")] == []

    (project.root / "charts" / "scoring" / "templates" / "deployment.yaml").write_text(original)  # the control
    assert main(["deploy", "prod", "--model", f"{name}:1"]) == 0, capsys.readouterr().err
    assert "tag: '1'" in (gitops / "production" / name / "values-prod.yaml").read_text()
    assert [d.status for d in records.list_deployments(project, "production")] == [records.DESIRED]


RACING_GIT = """#!/bin/bash
# A concurrent `mlops deploy prod` moves the GitOps branch just before this one creates its commit.
if [ "$1" = "-C" ] && [[ " $* " == *" commit-tree "* ]] && [ ! -e "$RACE_DONE" ]; then
  touch "$RACE_DONE"
  "$REAL_GIT" -C "$RACE_REPO" update-ref "refs/heads/$RACE_BRANCH" "$RACE_COMMIT"
fi
exec "$REAL_GIT" "$@"
"""


def test_a_gitops_commit_never_overwrites_a_concurrent_one(project, tmp_path, monkeypatch):
    """Issue 19: a concurrent `mlops deploy prod` that moves the GitOps branch first is never overwritten (the git
    on PATH races, as another process would)."""
    repo = tmp_path / "state.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(repo)], check=True)
    gitops = {"repo": str(repo), "branch": "production-state", "values_file": "prod/values-prod.yaml"}
    settings = dataclasses.replace(project, environments=environments_from({"production": {"gitops": gitops}}))
    name = NAME
    _, first, state = production.commit_desired_state(settings, production.desired_values(settings, name, "1"), "a@b")
    assert state == "committed" and git(repo, "rev-parse", "production-state") == first
    # the other deploy's commit, on top of the same parent
    tree = git(repo, "rev-parse", f"{first}^{{tree}}")
    concurrent = subprocess.run(["git", "-C", str(repo), "-c", "user.name=other", "-c", "user.email=o@example.com",
                                 "commit-tree", tree, "-p", first, "-m", "the other deploy"], capture_output=True,
                                text=True, check=True).stdout.strip()
    wrapper = tmp_path / "bin" / "git"
    wrapper.parent.mkdir()
    wrapper.write_text(RACING_GIT)
    wrapper.chmod(0o755)
    monkeypatch.setenv("REAL_GIT", shutil.which("git"))
    monkeypatch.setenv("RACE_REPO", str(repo))
    monkeypatch.setenv("RACE_BRANCH", "production-state")
    monkeypatch.setenv("RACE_COMMIT", concurrent)
    monkeypatch.setenv("RACE_DONE", str(tmp_path / "raced"))
    monkeypatch.setenv("PATH", f"{wrapper.parent}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(production.DeployError, match="production-state"):
        production.commit_desired_state(settings, production.desired_values(settings, name, "2"), "a@b")
    assert (tmp_path / "raced").exists()  # the race did happen
    assert git(repo, "rev-parse", "production-state") == concurrent  # the other deploy's commit is not lost
    # once the race is over, the next deploy commits on top of it
    _, third, state = production.commit_desired_state(settings, production.desired_values(settings, name, "2"), "a@b")
    assert state == "committed" and git(repo, "rev-parse", f"{third}^") == concurrent


# --- `mlops` as a subprocess on a workspace trained by the real pipeline (slow) --------------------------


def mlops(*args, env=None):
    """`mlops` as a subprocess: the pipeline runs that train the workspace."""
    return subprocess.run([sys.executable, "-m", "ml_service.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, timeout=600)


def cli(*args, env=None):
    """`mlops` in-process (its entry point; the process boundary is not what these tests check)."""
    return run_cli(*args, env=env)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        for key, value in workspace_env(tmp_path_factory.mktemp("prod")).items():
            patch.setenv(key, value)
        patch.delenv("MLOPS_TRACKING_URI", raising=False)
        settings = load_settings()
        first = mlops("pipeline", "run")
        second = mlops("pipeline", "run", "--param", "alpha=0.1")
        assert "version 1" in first.stdout and "version 2" in second.stdout, first.stderr + second.stderr
        yield settings


def release(ws):
    from ml_service.deploy.production import release_name

    return release_name(ws, ws.model_name)


def production_alias(ws):
    from mlflow.exceptions import MlflowException

    from ml_service.workspace.tracking import connect

    try:
        return str(connect(ws).get_model_version_by_alias(ws.model_name, "production").version)
    except MlflowException:
        return None


@pytest.fixture(scope="module")
def model_dir(ws, tmp_path_factory):
    """The files of registered version 2, which the FAKE cluster's service serves."""
    from ml_service.deploy.image import download_model
    from ml_service.workspace.tracking import connect

    return download_model(connect(ws).get_model_version(ws.model_name, "2"), tmp_path_factory.mktemp("served"))


KEY = "fake-cluster-scoring-key-0123456789"


@pytest.fixture(scope="module")
def cluster_state(tmp_path_factory):
    """The FAKE API server's releases, shared by the cluster-mode tests (revisions accumulate as in a cluster)."""
    return tmp_path_factory.mktemp("fake-cluster")


def fake_cluster_env(tmp_path, model_dir, state, **extra):
    from ml_service.deploy.chart import helm_binary

    log = tmp_path / "calls.log"
    env = {"MLOPS_HELM": str(FAKES / "helm"), "MLOPS_KUBECTL": str(FAKES / "kubectl"), "FAKE_LOG": str(log),
           "FAKE_PYTHON": sys.executable, "FAKE_REAL_HELM": helm_binary(), "FAKE_STATE": str(state),
           "FAKE_SECRET_KEYS": KEY, "MLOPS_SCORING_KEY": KEY, "MODEL_DIR": str(model_dir),
           "MLOPS_SCORE_MODULE": load_settings().model.score_module, **extra}
    return env, log


def revisions(state, name):
    return json.loads((state / "releases" / f"{name}.json").read_text())


@pytest.fixture()
def no_cluster(tmp_path):
    """A kubeconfig naming a cluster that does not answer (a closed port on 127.0.0.1): the real kubectl fails."""
    config = tmp_path / "kubeconfig"
    config.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "none",
        "clusters": [{"name": "none", "cluster": {"server": "https://127.0.0.1:1"}}],
        "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}],
        "users": [{"name": "none", "user": {"token": "none"}}]}))
    return {"KUBECONFIG": str(config)}


def values_file(ws):
    return ws.state_dir / "gitops" / "production" / ws.model_name / "values-prod.yaml"


@pytest.mark.slow
def test_gitops_mode_commits_validated_desired_state_and_leaves_the_alias(ws, no_cluster):
    from ml_service.deploy.image import image_repository

    result = cli("deploy", "prod", "--model", f"{ws.model_name}:1", env=no_cluster)
    assert result.returncode == 0, result.stderr
    assert "GitOps mode (no reachable Kubernetes cluster" in result.stdout and "validated offline" in result.stdout
    assert "NOTHING WAS APPLIED TO A CLUSTER" in result.stdout
    values = values_file(ws).read_text()
    assert "tag: '1'" in values and "version: '1'" in values
    assert f"helm upgrade --install {release(ws)} charts/scoring" in values
    log = subprocess.run(["git", "-C", str(ws.state_dir / "gitops"), "log", "-1", "--format=%B"], capture_output=True,
                         text=True).stdout
    assert log.startswith(f"production: {ws.model_name} version 1\n")
    assert f"Image: {image_repository(ws, ws.model_name)}:1 (a tag, not a digest: no registry configured" in log
    assert "Trained by pipeline run: " in log and "Approved by: " in log
    # what a controller applies: every object helm rendered, valid offline, with the new image
    from ml_service.deploy import chart
    from ml_service.deploy.production import KUBERNETES_VERSION

    manifests = values_file(ws).with_name("manifests.yaml").read_text()
    objects = [o for o in yaml.safe_load_all(manifests) if o]
    chart.validate_objects(ROOT / "charts" / "scoring", objects, KUBERNETES_VERSION)
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    assert deployment["metadata"]["name"] == release(ws)
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"{image_repository(ws, ws.model_name)}:1"
    assert production_alias(ws) is None


@pytest.mark.slow
def test_cluster_mode_upgrades_smoke_tests_with_the_key_and_moves_the_alias(ws, tmp_path, model_dir, cluster_state):
    from ml_service.deploy.image import image_repository

    env, log = fake_cluster_env(tmp_path, model_dir, cluster_state)
    result = cli("deploy", "prod", "--model", f"{ws.model_name}:2", "--smoke-timeout", "120", env=env)
    assert result.returncode == 0, result.stderr
    assert "production now serves" in result.stdout and "smoke test passed" in result.stdout
    calls = log.read_text()
    assert f"helm upgrade --install {release(ws)} " in calls and "--rollback-on-failure --wait" in calls
    assert f"kubectl port-forward svc/{release(ws)} " in calls and "helm rollback" not in calls
    assert [r["status"] for r in revisions(cluster_state, release(ws))] == ["deployed"]
    assert f'image: "{image_repository(ws, ws.model_name)}:2"' in revisions(cluster_state, release(ws))[-1]["manifest"]
    assert production_alias(ws) == "2"
    assert "live" in cli("deploy", "list").stdout


@pytest.mark.slow
def test_cluster_mode_rolls_back_when_the_smoke_test_fails(ws, tmp_path, model_dir, cluster_state):
    env, log = fake_cluster_env(tmp_path, model_dir, cluster_state, FAKE_SERVICE="broken")
    result = cli("deploy", "prod", "--model", f"{ws.model_name}:1", "--smoke-timeout", "3", env=env)
    assert result.returncode == 1
    assert "smoke test through the service failed" in result.stderr and "rolled back" in result.stderr
    assert f"helm rollback {release(ws)} 0 --wait" in log.read_text()
    history = revisions(cluster_state, release(ws))
    assert [r["status"] for r in history] == ["superseded", "superseded", "deployed"]
    assert history[-1]["manifest"] == history[0]["manifest"]  # version 2's manifest is live again
    assert production_alias(ws) == "2"  # unchanged


@pytest.mark.slow
def test_the_service_answers_only_with_the_scoring_key(ws, tmp_path, model_dir, cluster_state):
    env, log = fake_cluster_env(tmp_path, model_dir, cluster_state, MLOPS_SCORING_KEY="not-the-key-of-the-cluster")
    result = cli("deploy", "prod", "--model", f"{ws.model_name}:1", "--smoke-timeout", "120", env=env)
    assert result.returncode == 1 and "401" in result.stderr and "rolled back" in result.stderr, result.stderr
    assert production_alias(ws) == "2"


@pytest.mark.slow
def test_a_failed_helm_upgrade_is_reported_and_moves_nothing(ws, tmp_path, model_dir, cluster_state):
    env, log = fake_cluster_env(tmp_path, model_dir, cluster_state, FAKE_HELM_FAIL="upgrade")
    result = cli("deploy", "prod", "--model", f"{ws.model_name}:1", env=env)
    assert result.returncode == 1 and "helm upgrade failed" in result.stderr
    assert "UPGRADE FAILED" in result.stderr and "rolled back due to rollback-on-failure" in result.stderr
    assert "port-forward" not in log.read_text() and production_alias(ws) == "2"


@pytest.mark.slow
def test_model_delete_refuses_versions_in_use_and_deletes_the_rest(ws):
    refused = cli("model", "delete", f"{ws.model_name}:2")  # live in production (fake cluster) and champion
    assert refused.returncode == 1 and "refusing to delete" in refused.stderr and "production" in refused.stderr
    refused = cli("model", "delete", f"{ws.model_name}:1")  # production's desired state (GitOps) names it
    assert refused.returncode == 1 and "production (desired state)" in refused.stderr
    from ml_service.workspace.tracking import connect

    client = connect(ws)
    spare = client.create_model_version(ws.model_name, client.get_model_version(ws.model_name, "1").source)
    assert cli("model", "delete", f"{ws.model_name}:99").returncode == 1
    deleted = cli("model", "delete", f"{ws.model_name}:{spare.version}")
    assert deleted.returncode == 0, deleted.stderr
    versions = {str(v.version) for v in client.search_model_versions(f"name='{ws.model_name}'")}
    assert str(spare.version) not in versions and {"1", "2"} <= versions


@pytest.mark.slow
def test_gitops_branch_target_commits_without_touching_the_work_tree(ws, tmp_path):
    import dataclasses

    from ml_service.deploy.image import image_repository

    from ml_service.deploy import production

    repo = tmp_path / "project"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "README").write_text("work tree\n")
    subprocess.run(["git", "-C", str(repo), "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "init",
                    "--allow-empty"], check=True)
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    gitops = {"repo": str(repo), "branch": "production-state", "values_file": "prod/values-prod.yaml"}
    settings = dataclasses.replace(ws, environments=environments_from({"production": {"gitops": gitops}}))

    def show(rev):
        return subprocess.run(["git", "-C", str(repo), "show", rev], capture_output=True, text=True).stdout

    where, first, state = production.commit_desired_state(settings, production.desired_values(ws, "m", "1"), "x@y")
    assert state == "committed" and "branch production-state" in where
    assert "tag: '1'" in show("production-state:prod/values-prod.yaml")
    assert f'image: "{image_repository(ws, "m")}:1"' in show("production-state:prod/manifests.yaml")
    assert production.commit_desired_state(settings, production.desired_values(ws, "m", "1"), "x@y")[1:] == \
        (first, "unchanged")
    _, second, _ = production.commit_desired_state(settings, production.desired_values(ws, "m", "2"), "x@y")
    assert "tag: '2'" in show("production-state:prod/values-prod.yaml")
    assert subprocess.run(["git", "-C", str(repo), "rev-parse", f"{second}^"], capture_output=True,
                          text=True).stdout.strip() == first
    # the owner's work tree, HEAD and untracked files are as they were
    assert subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout == head
    status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain"], capture_output=True, text=True).stdout
    assert status == "?? README\n" and not (repo / "prod").exists()

    bare = tmp_path / "state.git"  # what a GitOps controller would watch
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    to_bare = dataclasses.replace(ws, environments=environments_from(
        {"production": {"gitops": {**gitops, "repo": str(bare)}}}))
    production.commit_desired_state(to_bare, production.desired_values(ws, "m", "4"), "x@y")
    shown = subprocess.run(["git", "-C", str(bare), "show", "production-state:prod/values-prod.yaml"],
                           capture_output=True, text=True).stdout
    assert "tag: '4'" in shown

    checked_out = dataclasses.replace(ws, environments=environments_from(
        {"production": {"gitops": {**gitops, "branch": "main"}}}))
    with pytest.raises(production.DeployError, match="checked out"):
        production.commit_desired_state(checked_out, production.desired_values(ws, "m", "3"), "x@y")


@pytest.mark.slow
def test_gitops_folder_target_commits_only_its_file(ws, tmp_path):
    import dataclasses

    from ml_service.deploy import production

    repo = tmp_path / "state"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "unrelated.txt").write_text("staged by its owner\n")
    subprocess.run(["git", "-C", str(repo), "add", "unrelated.txt"], check=True)
    settings = dataclasses.replace(ws, environments=environments_from({"production": {"gitops": {"repo": str(repo)}}}))
    _, _, state = production.commit_desired_state(settings, production.desired_values(ws, "m", "1"), "x@y")
    assert state == "committed"
    files = subprocess.run(["git", "-C", str(repo), "show", "--name-only", "--format=", "HEAD"], capture_output=True,
                           text=True).stdout.split()
    assert files == ["production/m/manifests.yaml", "production/m/values-prod.yaml"]
    status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain"], capture_output=True, text=True).stdout
    assert status == "A  unrelated.txt\n"


@pytest.mark.slow
def test_the_helm_test_script_passes_with_the_key_and_fails_without(tmp_path, model_dir):
    """charts/scoring/files/smoke_test.py, which `helm test` runs in the pod, against the real scoring service."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serving_env = {**os.environ, "MODEL_DIR": str(model_dir), "MLOPS_SCORING_KEYS": KEY,
                   "MLOPS_SCORE_MODULE": load_settings().model.score_module}
    server = subprocess.Popen([sys.executable, "-m", "ml_service.serving", "--port", str(port)], env=serving_env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    script = ROOT / "charts" / "scoring" / "files" / "smoke_test.py"

    def helm_test(key):
        env = {**os.environ, "SCORING_URL": f"http://127.0.0.1:{port}", "SCORING_KEY": key,
               "SMOKE_TIMEOUT_SECONDS": "60"}
        return subprocess.run([sys.executable, "-c", script.read_text()], env=env, capture_output=True, text=True,
                              timeout=120)

    try:  # no assertion on time: each run is bounded by SMOKE_TIMEOUT_SECONDS and the subprocess timeout
        passed = helm_test(f"{KEY},another-key")
        assert passed.returncode == 0 and "smoke test passed" in passed.stdout, passed.stderr
        refused = helm_test("not-the-key")
        assert refused.returncode == 1 and "POST /score: HTTP 401" in refused.stderr
    finally:
        server.terminate()
        server.wait(10)
