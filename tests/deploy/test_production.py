"""Production deployment: GitOps mode for real, cluster mode against a FAKE Kubernetes API server.

No Kubernetes API server can exist on these machines; helm and kubectl can (`make install`). So the
real helm renders, lints and validates everything, and only what needs an API server is faked:
tests/support/fakes/ holds a `helm` that runs the real helm for everything but `upgrade`,
`rollback` and `status` (kept in a folder, with the real helm's exit codes and messages), and a
`kubectl` whose `port-forward` serves the real scoring service with the deployed manifest's auth,
so the smoke test is real HTTP. GitOps mode runs the real kubectl against an unreachable cluster.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from ml_service.config import load_settings
from tests.conftest import ROOT, workspace_env

pytestmark = pytest.mark.integration
FAKES = ROOT / "tests" / "support" / "fakes"


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


KEY = "fake-cluster-scoring-key-0123456789"


@pytest.fixture(scope="module")
def cluster_state(tmp_path_factory):
    """The FAKE API server's releases, shared by the cluster-mode tests (revisions accumulate as in a cluster)."""
    return tmp_path_factory.mktemp("fake-cluster")


def fake_cluster(tmp_path, model_dir, state, **extra):
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


def test_gitops_mode_commits_validated_desired_state_and_leaves_the_alias(ws, no_cluster):
    from ml_service.deploy.image import image_repository

    result = mlops("deploy", "prod", "--model", f"{ws.model_name}:1", env=no_cluster)
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


def test_cluster_mode_upgrades_smoke_tests_with_the_key_and_moves_the_alias(ws, tmp_path, model_dir, cluster_state):
    from ml_service.deploy.image import image_repository

    env, log = fake_cluster(tmp_path, model_dir, cluster_state)
    result = mlops("deploy", "prod", "--model", f"{ws.model_name}:2", "--smoke-timeout", "30", env=env)
    assert result.returncode == 0, result.stderr
    assert "production now serves" in result.stdout and "smoke test passed" in result.stdout
    calls = log.read_text()
    assert f"helm upgrade --install {release(ws)} " in calls and "--rollback-on-failure --wait" in calls
    assert f"kubectl port-forward svc/{release(ws)} " in calls and "helm rollback" not in calls
    assert [r["status"] for r in revisions(cluster_state, release(ws))] == ["deployed"]
    assert f'image: "{image_repository(ws, ws.model_name)}:2"' in revisions(cluster_state, release(ws))[-1]["manifest"]
    assert production_alias(ws) == "2"
    assert "live" in mlops("deploy", "list").stdout


def test_cluster_mode_rolls_back_when_the_smoke_test_fails(ws, tmp_path, model_dir, cluster_state):
    env, log = fake_cluster(tmp_path, model_dir, cluster_state, FAKE_SERVICE="broken")
    result = mlops("deploy", "prod", "--model", f"{ws.model_name}:1", "--smoke-timeout", "3", env=env)
    assert result.returncode == 1
    assert "smoke test through the service failed" in result.stderr and "rolled back" in result.stderr
    assert f"helm rollback {release(ws)} 0 --wait" in log.read_text()
    history = revisions(cluster_state, release(ws))
    assert [r["status"] for r in history] == ["superseded", "superseded", "deployed"]
    assert history[-1]["manifest"] == history[0]["manifest"]  # version 2's manifest is live again
    assert production_alias(ws) == "2"  # unchanged


def test_the_service_answers_only_with_the_scoring_key(ws, tmp_path, model_dir, cluster_state):
    env, log = fake_cluster(tmp_path, model_dir, cluster_state, MLOPS_SCORING_KEY="not-the-key-of-the-cluster")
    result = mlops("deploy", "prod", "--model", f"{ws.model_name}:1", "--smoke-timeout", "30", env=env)
    assert result.returncode == 1 and "401" in result.stderr and "rolled back" in result.stderr, result.stderr
    assert production_alias(ws) == "2"


def test_a_failed_helm_upgrade_is_reported_and_moves_nothing(ws, tmp_path, model_dir, cluster_state):
    env, log = fake_cluster(tmp_path, model_dir, cluster_state, FAKE_HELM_FAIL="upgrade")
    result = mlops("deploy", "prod", "--model", f"{ws.model_name}:1", env=env)
    assert result.returncode == 1 and "helm upgrade failed" in result.stderr
    assert "UPGRADE FAILED" in result.stderr and "rolled back due to rollback-on-failure" in result.stderr
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

    from ml_service.deploy.image import image_repository

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
    assert files == ["production/m/manifests.yaml", "production/m/values-prod.yaml"]
    status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain"], capture_output=True, text=True).stdout
    assert status == "A  unrelated.txt\n"


def test_the_helm_test_script_passes_with_the_key_and_fails_without(tmp_path, model_dir):
    """charts/scoring/files/smoke_test.py, which `helm test` runs in the pod, against the real scoring service."""
    import socket
    import time

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

    try:
        started = time.monotonic()
        passed = helm_test(f"{KEY},another-key")
        assert passed.returncode == 0 and "smoke test passed" in passed.stdout, passed.stderr
        refused = helm_test("not-the-key")
        assert refused.returncode == 1 and "POST /score: HTTP 401" in refused.stderr
        assert time.monotonic() - started < 90
    finally:
        server.terminate()
        server.wait(10)
