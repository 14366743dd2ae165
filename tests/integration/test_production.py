"""Production deployment: GitOps mode for real, cluster mode against FAKE helm and kubectl executables.

No Kubernetes API server and no helm can exist on these machines, so the cluster-side code runs
against the fakes in tests/integration/fakes/ (named as fakes): they record their calls, and the
fake `kubectl port-forward` serves the real scoring service, so the smoke test is real HTTP.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ml_service.config import load_settings
from tests.conftest import ROOT, workspace_env

pytestmark = pytest.mark.integration
FAKES = ROOT / "tests" / "integration" / "fakes"


def mlops(*args, env=None):
    return subprocess.run([sys.executable, "-m", "ml_service.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, timeout=600)


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


def fake_cluster(tmp_path, model_dir, **extra):
    log = tmp_path / "calls.log"
    env = {"PATH": f"{FAKES}:{os.environ['PATH']}", "FAKE_LOG": str(log), "FAKE_PYTHON": sys.executable,
           "MODEL_DIR": str(model_dir), "MLOPS_SCORE_MODULE": load_settings().model.score_module, **extra}
    return env, log


def values_file(ws):
    return ws.state_dir / "gitops" / "production" / ws.model_name / "values-prod.yaml"


def test_gitops_mode_commits_validated_desired_state_and_leaves_the_alias(ws):
    result = mlops("deploy", "prod", "--model", f"{ws.model_name}:1")
    assert result.returncode == 0, result.stderr
    assert "GitOps mode (no helm binary on PATH)" in result.stdout and "validated offline" in result.stdout
    assert "NOTHING WAS APPLIED TO A CLUSTER" in result.stdout
    values = values_file(ws).read_text()
    assert "tag: '1'" in values and "version: '1'" in values
    assert f"helm upgrade --install {release(ws)} charts/scoring" in values
    log = subprocess.run(["git", "-C", str(ws.state_dir / "gitops"), "log", "--format=%s"], capture_output=True,
                         text=True).stdout
    assert f"production: {ws.model_name} version 1" in log
    assert production_alias(ws) is None


def test_cluster_mode_upgrades_smoke_tests_and_moves_the_alias(ws, tmp_path, model_dir):
    env, log = fake_cluster(tmp_path, model_dir)
    result = mlops("deploy", "prod", "--model", f"{ws.model_name}:2", "--smoke-timeout", "30", env=env)
    assert result.returncode == 0, result.stderr
    assert "production now serves" in result.stdout and "smoke test passed" in result.stdout
    calls = log.read_text()
    assert f"helm upgrade --install {release(ws)} " in calls and "--atomic --wait" in calls
    assert f"kubectl port-forward svc/{release(ws)} " in calls and "helm rollback" not in calls
    assert production_alias(ws) == "2"
    assert "live" in mlops("deploy", "list").stdout


def test_cluster_mode_rolls_back_when_the_smoke_test_fails(ws, tmp_path, model_dir):
    env, log = fake_cluster(tmp_path, model_dir, FAKE_SERVICE="broken")
    result = mlops("deploy", "prod", "--model", f"{ws.model_name}:1", "--smoke-timeout", "3", env=env)
    assert result.returncode == 1
    assert "smoke test through the service failed" in result.stderr and "rolled back" in result.stderr
    assert f"helm rollback {release(ws)} 0 --wait" in log.read_text()
    assert production_alias(ws) == "2"  # unchanged


def test_a_failed_helm_upgrade_is_reported_and_moves_nothing(ws, tmp_path, model_dir):
    env, log = fake_cluster(tmp_path, model_dir, FAKE_HELM_FAIL="upgrade")
    result = mlops("deploy", "prod", "--model", f"{ws.model_name}:1", env=env)
    assert result.returncode == 1 and "helm upgrade failed" in result.stderr
    assert "port-forward" not in log.read_text() and production_alias(ws) == "2"


def test_model_delete_refuses_versions_in_use_and_deletes_the_rest(ws):
    refused = mlops("model", "delete", f"{ws.model_name}:2")  # live in production (fake cluster) and champion
    assert refused.returncode == 1 and "refusing to delete" in refused.stderr and "production" in refused.stderr
    refused = mlops("model", "delete", f"{ws.model_name}:1")  # production's desired state (GitOps) names it
    assert refused.returncode == 1 and "production (desired state)" in refused.stderr
    from ml_service.workspace.tracking import connect

    client = connect(ws)
    spare = client.create_model_version(ws.model_name, client.get_model_version(ws.model_name, "1").source)
    assert mlops("model", "delete", f"{ws.model_name}:99").returncode == 1
    deleted = mlops("model", "delete", f"{ws.model_name}:{spare.version}")
    assert deleted.returncode == 0, deleted.stderr
    versions = {str(v.version) for v in client.search_model_versions(f"name='{ws.model_name}'")}
    assert str(spare.version) not in versions and {"1", "2"} <= versions


def test_gitops_branch_target_commits_without_touching_the_work_tree(ws, tmp_path):
    import dataclasses

    from ml_service.deploy import production

    repo = tmp_path / "project"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "README").write_text("work tree\n")
    subprocess.run(["git", "-C", str(repo), "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "init",
                    "--allow-empty"], check=True)
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    gitops = {"repo": str(repo), "branch": "production-state", "values_file": "prod/values-prod.yaml"}
    settings = dataclasses.replace(ws, environments={"production": {"gitops": gitops}})

    def show(rev):
        return subprocess.run(["git", "-C", str(repo), "show", rev], capture_output=True, text=True).stdout

    where, first, state = production.commit_desired_state(settings, production.desired_values(ws, "m", "1"), "x@y")
    assert state == "committed" and "branch production-state" in where
    assert "tag: '1'" in show("production-state:prod/values-prod.yaml")
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
    to_bare = dataclasses.replace(ws, environments={"production": {"gitops": {**gitops, "repo": str(bare)}}})
    production.commit_desired_state(to_bare, production.desired_values(ws, "m", "4"), "x@y")
    shown = subprocess.run(["git", "-C", str(bare), "show", "production-state:prod/values-prod.yaml"],
                           capture_output=True, text=True).stdout
    assert "tag: '4'" in shown

    checked_out = dataclasses.replace(ws, environments={"production": {"gitops": {**gitops, "branch": "main"}}})
    with pytest.raises(production.DeployError, match="checked out"):
        production.commit_desired_state(checked_out, production.desired_values(ws, "m", "3"), "x@y")


def test_gitops_folder_target_commits_only_its_file(ws, tmp_path):
    import dataclasses

    from ml_service.deploy import production

    repo = tmp_path / "state"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "unrelated.txt").write_text("staged by its owner\n")
    subprocess.run(["git", "-C", str(repo), "add", "unrelated.txt"], check=True)
    settings = dataclasses.replace(ws, environments={"production": {"gitops": {"repo": str(repo)}}})
    _, _, state = production.commit_desired_state(settings, production.desired_values(ws, "m", "1"), "x@y")
    assert state == "committed"
    files = subprocess.run(["git", "-C", str(repo), "show", "--name-only", "--format=", "HEAD"], capture_output=True,
                           text=True).stdout.split()
    assert files == ["production/m/values-prod.yaml"]
    status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain"], capture_output=True, text=True).stdout
    assert status == "A  unrelated.txt\n"
