"""The `docker` compute target: pipeline steps inside the training image, on a real Docker engine; the folders
it mounts, without one."""
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.integration


def mlops(*args):
    return subprocess.run([sys.executable, "-m", "ml_service.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=1200)


@pytest.mark.docker
def test_a_docker_step_runs_in_the_training_image_and_passes_outputs_on(docker_engine, workspace, tmp_path):
    pipeline = tmp_path / "pipeline.yml"
    pipeline.write_text("""
name: in-docker
steps:
  inside: {function: "tests.support.steps:report_platform", compute: docker, reuse: false}
  outside: {function: "tests.support.steps:read_platform", inputs: {previous: {step: inside}}, reuse: false}
""")
    result = mlops("pipeline", "run", str(pipeline))
    assert result.returncode == 0, result.stderr
    host_python = ".".join(map(str, sys.version_info[:3]))
    outcome = result.stdout.split("outcome: platform ")[1].strip()
    pretty, python, uid = outcome.split("|")
    assert "bookworm" in pretty  # the Debian base image, not this machine's Python build
    assert python.startswith("3.11") and python != host_python
    assert uid == str(os.getuid())


@pytest.mark.docker
def test_the_default_projects_train_step_runs_in_docker_and_registers(docker_engine, workspace, tmp_path):
    import yaml

    definition = yaml.safe_load(workspace.pipeline_file.read_text())
    definition["steps"]["train"]["compute"] = "docker"
    pipeline = tmp_path / "pipeline.yml"
    pipeline.write_text(yaml.safe_dump(definition, sort_keys=False))
    result = mlops("pipeline", "run", str(pipeline))
    assert result.returncode == 0, result.stderr
    assert f"registered {workspace.model_name} version 1" in result.stdout


@pytest.mark.docker
def test_a_docker_step_that_times_out_is_killed(docker_engine, workspace, tmp_path):
    pipeline = tmp_path / "pipeline.yml"
    pipeline.write_text(f"""
name: hangs-in-docker
steps:
  hang:
    function: "tests.support.steps:spawn_and_hang"
    compute: docker
    params: {{pid_file: "{workspace.state_dir / 'child.pid'}"}}
    timeout_minutes: 0.1
""")
    result = mlops("pipeline", "run", str(pipeline))
    assert result.returncode == 1 and "timed out" in result.stderr
    assert not docker_engine.containers.list(all=True, filters={"label": "mlops.kind=pipeline-step"})


@pytest.mark.docker
def test_a_docker_step_sees_none_of_the_state_dirs_secrets_or_team_server_files(docker_engine, workspace, tmp_path):
    """The state dir is mounted (the embedded store lives there) but its secrets and the team server's files are
    not: an empty folder is all a step in a container finds there."""
    planted = {workspace.state_dir / "secrets" / "tracking_password": "checkout-s3cret",
               workspace.state_dir / "team" / "secrets" / "admin_password": "admin-s3cret",
               workspace.state_dir / "team" / "artifacts" / "1" / "model.pkl": "a model"}
    for path, value in planted.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value)
    pipeline = tmp_path / "pipeline.yml"
    pipeline.write_text("""
name: reads-secrets
steps:
  peek: {function: "tests.support.steps:read_state_secrets", compute: docker, reuse: false}
""")
    result = mlops("pipeline", "run", str(pipeline))
    assert result.returncode == 0, result.stderr  # the step fails when it reads any of them
    assert all(path.read_text() == value for path, value in planted.items())  # the host's files untouched


def test_an_input_outside_the_mounted_folders_is_mounted_read_only_once_and_one_inside_is_not(workspace, tmp_path):
    from ml_service.pipelines.docker_compute import DockerCompute

    work, data = tmp_path / "run", tmp_path / "data"  # the pipeline's workdir, and data outside every mount
    spec = work / "steps" / "train" / "spec.json"
    spec.parent.mkdir(parents=True)
    spec.write_text(json.dumps({"inputs": {"a": str(data / "a.csv"), "b": str(data / "b.csv"),
                                           "code": str(workspace.root / "ml_service" / "cli"),
                                           "prep": str(work / "steps" / "prep" / "out.csv"),
                                           "state": str(workspace.state_dir / "x.csv")}}))
    mounts = DockerCompute(workspace)._mounts(spec)
    assert {path: mount["mode"] for path, mount in mounts.items()} == {
        str(workspace.root): "ro", str(work): "rw", str(workspace.state_dir): "rw", str(data): "ro"}
    assert all(mount["bind"] == path for path, mount in mounts.items())
