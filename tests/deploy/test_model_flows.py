"""Every model project of mlops.yml through its own pipelines, in ONE workspace, with real Docker.

For each project: publish its ML pipeline, run `<project>-retrain` under the local engine (which
registers version 1 and, by its completion trigger, runs `<project>-release`: image, QA container,
smoke test with the project's smoke payload, approval, production desired state). Then both QA
containers are live side by side and each answers requests by column name. Nothing here names a
project: it is whatever mlops.yml lists.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request

import pytest

from ml_service.config import load_settings
from tests.conftest import ROOT, workspace_env
from tests.support.cli import run_cli

pytestmark = [pytest.mark.integration, pytest.mark.docker]
PROJECTS = [m.project for m in load_settings({"MLOPS_ROOT": str(ROOT)}).models]


def mlops(*args, project: str = ""):
    env = dict(os.environ)
    if project:
        env["MLOPS_MODEL"] = project
    return subprocess.run([sys.executable, "-m", "ml_service.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=1200, env=env)


def cli(*args, project: str = ""):
    """`mlops` in-process, for publish, list and check (the pipelines' runs and approvals stay subprocesses)."""
    return run_cli(*args, env={"MLOPS_MODEL": project} if project else None)


@pytest.fixture(scope="module")
def shared_ws(docker_engine, tmp_path_factory):
    """One workspace for every project; each project's registered model renamed for this test run."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {**workspace_env(tmp_path_factory.mktemp("flows")), "MLOPS_USER": "flow@example.com"}.items():
            patch.setenv(key, value)
        for key in ("MLOPS_SCORING_KEYS", "MLOPS_MODEL", "MLOPS_MODEL_NAME", "MLOPS_EXPERIMENT",
                    "MLOPS_TRACKING_URI"):
            patch.delenv(key, raising=False)
        settings = load_settings()
        yield settings
    names = [m.name for m in settings.models]
    for container in docker_engine.containers.list(all=True, filters={"label": "mlops.environment=qa"}):
        if container.labels.get("mlops.model.name") in names and \
                container.labels.get("mlops.workspace") == _workspace_label(settings):
            container.remove(force=True)
    from docker.errors import APIError

    for name in names:
        for image in docker_engine.images.list(name=f"mlops/{name.lower()}"):
            try:
                docker_engine.images.remove(image.id, force=True)
            except APIError:  # still used by a container of another workspace on this engine: leave it
                pass


def _workspace_label(settings) -> str:
    from ml_service.deploy.qa import workspace_label

    return workspace_label(settings)


@pytest.mark.parametrize("project", PROJECTS)
def test_retrain_registers_and_the_release_reaches_production(shared_ws, project):
    model = shared_ws.select(project).model
    assert cli("pipeline", "publish", project=project).returncode == 0
    run = mlops("ci", "run", f"{project}-retrain", project=project)
    assert run.returncode == 0, run.stdout + run.stderr
    from ml_service.workspace.tracking import connect

    champion = connect(shared_ws).get_model_version_by_alias(model.name, "champion")
    assert str(champion.version) == "1" and champion.tags["experiment_name"] == project
    assert f"{project}-release" in run.stdout and "Smoke test QA  Succeeded" in run.stdout
    assert "is waiting for approval of stage Production" in run.stdout
    # the console tells the story: what retrain decided, what QA serves and that its smoke test passed
    assert f"retrain: registered {model.name} version 1" in run.stdout
    assert f"QA now serves {model.name} version 1 at http://127.0.0.1:" in run.stdout
    assert "smoke test passed for http://127.0.0.1:" in run.stdout
    import ast

    smoked = ast.literal_eval(run.stdout.split("smoke test passed for ", 1)[1].split("; result ", 1)[1].splitlines()[0])
    assert len(smoked) == len(json.loads(model.smoke_payload.read_text())["data"])  # the project's own payload

    approved = mlops("ci", "approve", "--comment", f"ship {project}")
    assert approved.returncode == 0 and f"({project}-release): succeeded" in approved.stdout, approved.stdout
    assert "NOTHING WAS APPLIED TO A CLUSTER" in approved.stdout  # the approved run's own production summary
    from ml_service.deploy.production import gitops_target

    repo, values_file, _ = gitops_target(shared_ws, model.name)
    assert f"name: {model.name}" in (repo / values_file).read_text()

    again = mlops("ci", "run", f"{project}-retrain", project=project)  # same data, same code: not better
    assert again.returncode == 0, again.stdout + again.stderr
    metric = champion.tags["metric"]
    assert f"retrain: not promoted: candidate {metric} " in again.stdout and " vs champion v1 " in again.stdout
    assert "release: none needed (QA serves the champion)" in again.stdout
    assert f"{project}-release" not in again.stdout  # nothing registered, nothing released
    assert len(connect(shared_ws).search_model_versions(f"name='{model.name}'")) == 1


def test_both_qa_containers_serve_their_own_model_by_column_name(shared_ws):
    listing = json.loads(cli("deploy", "list", "--json").stdout)
    live_qa = {d["model"]: d for d in listing if d["environment"] == "qa" and d["status"] == "live"}
    desired = {d["model"] for d in listing if d["environment"] == "production" and d["status"] == "desired"}
    names = {m.name for m in shared_ws.models}
    assert set(live_qa) == names == desired
    assert len({d["url"] for d in live_qa.values()}) == len(names)
    for model in shared_ws.models:
        deployment = live_qa[model.name]
        assert deployment["version"] == "1" and deployment["image"] == f"mlops/{model.name.lower()}:1"
        with urllib.request.urlopen(f"{deployment['url']}/v2/models/{model.name}", timeout=10) as response:
            columns = [i["name"] for i in json.load(response)["inputs"]]
        payload = json.loads(model.smoke_payload.read_text())
        records = [row if isinstance(row, dict) else dict(zip(columns, row)) for row in payload["data"]]
        request = urllib.request.Request(f"{deployment['url']}/score", json.dumps({"data": records}).encode(),
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = json.load(response)
        assert len(body["result"]) == len(records)
        if model.task == "classification":
            assert len(body["probabilities"]) == len(records) and set(body["result"]) <= set(body["classes"])
            assert all(abs(sum(p) - 1) < 1e-6 for p in body["probabilities"])


def test_a_removed_qa_container_is_reported_and_the_next_retrain_brings_the_champion_back(shared_ws, docker_engine):
    project = PROJECTS[0]
    model = shared_ws.select(project).model
    listing = json.loads(cli("deploy", "list", "--json").stdout)
    before = next(d for d in listing if d["model"] == model.name and d["environment"] == "qa")
    docker_engine.containers.get(before["target"]).remove(force=True)

    after = json.loads(cli("deploy", "list", "--json").stdout)
    assert next(d for d in after if d["model"] == model.name and d["environment"] == "qa")["status"] == \
        "down: missing"  # what is really live, not the last thing recorded
    check = cli("deploy", "check", "qa", project=project)
    assert check.returncode == 3 and "does NOT serve the champion" in check.stdout

    run = mlops("ci", "run", f"{project}-retrain", project=project)  # registers nothing: same data and code
    assert run.returncode == 0 and f"{project}-release" in run.stdout, run.stdout + run.stderr
    assert cli("deploy", "check", "qa", project=project).returncode == 0
    live = json.loads(cli("deploy", "list", "--json").stdout)
    qa = next(d for d in live if d["model"] == model.name and d["environment"] == "qa")
    assert qa["status"] == "live" and qa["version"] == "1" and qa["target"] != before["target"]
    container = docker_engine.containers.get(qa["target"])
    assert container.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    mlops("ci", "reject", "--comment", "converged QA only")  # leave no run waiting
