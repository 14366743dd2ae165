"""Deploy promises asserted on effects (issue 19): a version live anywhere cannot be deleted; `deploy prod`
refuses a desired state that fails offline validation and commits nothing; a GitOps commit never overwrites
a concurrent one. Real MLflow store, real helm (`make install`), real git; no cluster (GitOps mode)."""
from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess

import pytest
import yaml

from ml_service.config import load_settings
from tests.conftest import ROOT

pytestmark = pytest.mark.integration
MLOPS_YML = "models:\n  - {project: proj, name: promises_model}\n"


def git(repo, *args) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project root of its own (mlops.yml, a copy of the chart), an empty workspace, no reachable cluster."""
    root = tmp_path / "root"
    shutil.copytree(ROOT / "charts", root / "charts")
    (root / "proj").mkdir()
    (root / "mlops.yml").write_text(MLOPS_YML)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "none",
        "clusters": [{"name": "none", "cluster": {"server": "https://127.0.0.1:1"}}],
        "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}],
        "users": [{"name": "none", "user": {"token": "none"}}]}))
    for key, value in {"MLOPS_ROOT": str(root), "MLOPS_STATE_DIR": str(tmp_path / "ws"), "KUBECONFIG": str(kubeconfig),
                       "MLFLOW_DISABLE_TELEMETRY": "true", "MLOPS_USER": "lead@example.com"}.items():
        monkeypatch.setenv(key, value)
    for key in ("MLOPS_TRACKING_URI", "MLOPS_ARTIFACT_ROOT", "MLOPS_MODEL", "MLOPS_MODEL_NAME", "MLOPS_EXPERIMENT",
                "MLOPS_HELM", "MLOPS_KUBECTL", "MLOPS_IMAGE_REGISTRY"):
        monkeypatch.delenv(key, raising=False)
    return load_settings()


@pytest.fixture
def client(project):
    from ml_service.workspace.tracking import connect

    client = connect(project)
    client.create_registered_model(project.model_name)
    for _ in range(3):
        client.create_model_version(project.model_name, "file:///nowhere/model")
    return client


def versions(client, name) -> set[str]:
    return {str(v.version) for v in client.search_model_versions(f"name='{name}'")}


def test_a_version_live_in_an_environment_cannot_be_deleted(project, client, capsys):
    from ml_service.cli import main
    from ml_service.deploy import records

    name = project.model_name
    records.record(project, "qa", name, "2", "mlops/img:2", "http://127.0.0.1:1", records.LIVE, "docker")
    assert main(["model", "delete", f"{name}:2"]) == 1  # live in QA, holds no alias
    err = capsys.readouterr().err
    assert "refusing to delete" in err and "qa" in err
    assert "2" in versions(client, name)
    assert main(["model", "delete", f"{name}:1"]) == 0  # nothing serves it
    assert versions(client, name) == {"2", "3"}
    records.record(project, "qa", name, "3", "mlops/img:3", "http://127.0.0.1:1", records.LIVE, "docker")
    assert records.live_versions(project, name) == {"3": {"qa"}}  # version 2 was replaced
    assert main(["model", "delete", f"{name}:2"]) == 0 and versions(client, name) == {"3"}
    records.record(project, "production", name, "3", "mlops/img:3", "", records.DESIRED, "gitops")
    records.record(project, "qa", name, "3", "mlops/img:3", "", records.FAILED, "docker")
    assert records.live_versions(project, name) == {"3": {"qa", "production (desired state)"}}


def break_the_chart(root) -> None:
    """A template that helm renders but Kubernetes refuses: an unknown field in the Deployment's spec."""
    template = root / "charts" / "scoring" / "templates" / "deployment.yaml"
    text = template.read_text()
    assert "\nspec:\n" in text
    template.write_text(text.replace("\nspec:\n", "\nspec:\n  replicaz: 2\n", 1))


def test_deploy_prod_refuses_a_desired_state_that_fails_offline_validation(project, client, capsys):
    from ml_service.cli import main
    from ml_service.deploy import records

    name = project.model_name
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
    from ml_service.deploy import production

    repo = tmp_path / "state.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(repo)], check=True)
    gitops = {"repo": str(repo), "branch": "production-state", "values_file": "prod/values-prod.yaml"}
    settings = dataclasses.replace(project, environments={"production": {"gitops": gitops}})
    name = project.model_name
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
