"""Issue 23 item 5: built-in tasks with a faithful local meaning, with their documented inputs and
defaults; a task that needs a cloud is named before the run starts and the run stops there.

Azure: each task's task.json in microsoft/azure-pipelines-tasks (Tasks/<Name>V<major>/task.json) and the
task reference (MicrosoftDocs/azure-devops-yaml-schema task-reference/*.md); the inputs and defaults are
in /work/notes/ci-semantics.md. Where a task cannot run here (AzureCLI@2, PowerShell without pwsh) the
issue asks for a refusal before the run starts naming the construct, the file and line, and what to do:
these tests read that as a `plan` record of the run naming each such step (written before any step runs)
and the run stopping at the first of them (item 8: "run as far as their cloud tasks allow").
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _plan(run) -> str:
    """The details of the run's plan records (what the engine refused before the run started)."""
    return " ".join(r["detail"] or "" for r in run.records if r["kind"] == "plan")


def test_bash_cmdline_and_python_script_tasks(project):
    project.add("tasks_shell.yml", commit=False)
    project.write("scripts/args.sh", 'echo "OUT:args=$1|$2"\n', commit=False)
    project.write("scripts/hello.py", 'print("OUT:pyfile=ok")\n')
    run = project.run("tasks_shell.yml")
    assert run.out.get("bash_cwd") == run.out.get("temp")  # workingDirectory; today: Bash@3 is refused
    assert run.out.get("args") == "one|two words"  # targetType defaults to filePath; arguments
    assert run.out.get("cmdline") == "ok"
    assert run.out.get("cmdline_cwd") == run.out.get("temp")  # CmdLine@2's workingDirectory
    assert run.out.get("python_args") == "a|b"
    assert run.out.get("pyfile") == "ok"  # scriptSource defaults to filePath
    assert run.result == "succeeded"


def test_use_python_version_puts_a_matching_python_first_on_path(project):
    project.add("tasks_python.yml")
    run = project.run("tasks_python.yml")
    location = Path(run.out.get("location", "/nonexistent"))
    assert run.out.get("major") == "3"
    assert Path(run.out.get("onPath", "/")).parent.parent == location or \
        Path(run.out.get("onPath", "/")).parent == location  # <location>/bin/python (or python.exe layout)
    assert location.resolve() != Path(sys.prefix).resolve()  # a Python of the machine, not mlops's venv


def test_use_python_version_fails_when_no_python_matches(project):
    """Passes today (the task is refused as a whole); it guards the failure once the task exists."""
    project.add("tasks_python_missing.yml")
    run = project.run("tasks_python_missing.yml")
    assert run.steps().get("python 2.6") == "Failed"
    assert "after" not in run.out


def test_copy_delete_archive_and_extract_files(project):
    project.add("tasks_files.yml")
    run = project.run("tasks_files.yml")
    assert run.out.get("copied", "").split() == ["./a/two.txt", "./one.txt"]  # !**/skip.txt excluded
    assert run.out.get("flat", "").split() == ["./one.txt", "./skip.txt", "./three.log", "./two.txt"]
    assert run.out.get("src", "").split() == ["./a/skip.txt", "./a/two.txt", "./one.txt"]  # **/*.log deleted
    assert run.out.get("unzipped", "").split() == ["./src/a/skip.txt", "./src/a/two.txt", "./src/one.txt"]
    assert run.out.get("untarred", "").split() == ["./a/skip.txt", "./a/two.txt", "./one.txt"]
    assert run.out.get("kinds") == "True False False"  # archiveType zip is a zip, tar a tar (extraction reads both)
    assert run.result == "succeeded"


def test_publish_and_download_build_artifacts(project):
    project.add("tasks_build_artifacts.yml")
    run = project.run("tasks_build_artifacts.yml")
    assert run.out.get("v0") == "wheel"
    shown = run.out.get("single", "").split()  # (the folder is also Build.ArtifactStagingDirectory: pkg)
    assert "package" in shown and "docs" not in shown  # downloadType single: that artifact, not docs too
    assert run.out.get("v1") == "wheel"
    assert run.result == "succeeded"


@pytest.mark.docker
def test_docker_build_tags_an_image(project):
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        pytest.fail("no Docker engine: bash environment_setup/docker_engine.sh")
    repository = f"t23-conformance-{project.root.parent.name.lower()}"
    project.add("tasks_docker.yml", commit=False)
    project.write("docker/Dockerfile", "FROM mlops-python:3.11-bookworm\nRUN echo built > /built.txt\n")
    tags = ["conformance"]
    try:
        run = project.run("tasks_docker.yml", params={"repository": repository})
        tags.append(str(run.run.id))  # tags default to $(Build.BuildId); both are listed here
        for tag in tags:
            shown = subprocess.run(["docker", "image", "inspect", f"{repository}:{tag}"], capture_output=True)
            assert shown.returncode == 0, tag  # today: Docker@2 is refused
    finally:
        for tag in tags:
            subprocess.run(["docker", "image", "rm", "-f", f"{repository}:{tag}"], capture_output=True)


def _docker_config() -> bytes | None:
    folder = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    config = folder / "config.json"
    return config.read_bytes() if config.exists() else None


@pytest.mark.docker
def test_docker_build_and_push_go_to_the_mapped_registry_and_login_logout_leave_the_machines_credentials(
        project, image_registry):
    repository = f"t23-push-{project.root.parent.name.lower()}"
    project.configure(registries={"team-registry": image_registry})
    project.add("tasks_docker_push.yml", commit=False)
    project.write("docker/Dockerfile", "FROM mlops-python:3.11-bookworm\nARG EXTRA=first\n"
                                       "RUN echo $EXTRA > /extra.txt\n")
    credentials = _docker_config()
    run = project.run("tasks_docker_push.yml", params={"repository": repository})
    image = f"{image_registry}/{repository}"
    try:
        assert run.result == "succeeded", run.error + run.logs[-2000:]  # buildAndPush ignored its bad --target
        with urllib.request.urlopen(f"http://{image_registry}/v2/{repository}/tags/list", timeout=10) as answer:
            tags = set(json.loads(answer.read())["tags"])
        assert tags == {str(run.run.id), "latest", "second"}  # tags default to $(Build.BuildId)
        extra = subprocess.run(["docker", "run", "--rm", f"{image}:second", "cat", "/extra.txt"],
                               capture_output=True, text=True, timeout=120)
        assert extra.stdout.strip() == "second"  # build's arguments were passed
        assert _docker_config() == credentials  # login and logout wrote nothing to this machine's Docker
    finally:
        for tag in (str(run.run.id), "latest", "second"):
            subprocess.run(["docker", "image", "rm", "-f", f"{image}:{tag}"], capture_output=True)


def test_a_docker_step_with_an_unmapped_or_no_registry_connection_is_named_before_the_run(project):
    project.add("tasks_docker_unmapped.yml")
    text = (project.root / ".pipelines" / "tasks_docker_unmapped.yml").read_text().splitlines()
    lines = [i for i, row in enumerate(text, 1) if "task: Docker@2" in row]
    run = project.run("tasks_docker_unmapped.yml")
    plan = _plan(run)
    assert "nobody-mapped-this" in plan and f"tasks_docker_unmapped.yml:{lines[0]}" in plan
    assert f"tasks_docker_unmapped.yml:{lines[1]}" in plan  # a push without a connection: Docker Hub
    assert run.out.get("before") == "ran" and "after" not in run.out
    assert run.steps()["push to an unmapped connection"] == "Failed" and run.result == "failed"
    assert "push to docker hub" not in {k for k, v in run.steps().items() if v == "Succeeded"}


def test_a_registry_connection_named_through_a_variable_is_the_variables_value(project):
    project.configure(registries={"team-registry": "127.0.0.1:5000"})
    project.add("tasks_docker_variable_connection.yml")
    run = project.run("tasks_docker_variable_connection.yml")
    assert _plan(run) == "" and run.out.get("after") == "ran" and run.result == "succeeded", _plan(run)
    project.configure(registries={"other": "127.0.0.1:5000"})
    plan = _plan(project.run("tasks_docker_variable_connection.yml"))
    assert "'team-registry' is not mapped" in plan, plan


def test_a_registry_address_with_a_scheme_is_refused_with_its_place(project):
    project.configure(registries={"team-registry": "https://127.0.0.1:5000"})
    from ml_service.errors import MLOpsError

    with pytest.raises(MLOpsError, match=r"ci\.registries\.team-registry|registries.*team-registry"):
        project.settings()


@pytest.mark.docker
def test_docker_start_and_stop_a_container(project):
    name = f"t23-start-{project.root.parent.name.lower()}"
    subprocess.run(["docker", "create", "--name", name, "mlops-python:3.11-bookworm", "sleep", "300"],
                   capture_output=True, check=True)
    try:
        project.add("tasks_docker_start_stop.yml")
        run = project.run("tasks_docker_start_stop.yml", params={"container": name})
        assert run.out.get("running") == "true" and run.out.get("stopped") == "false", run.logs[-2000:]
        assert run.result == "succeeded"
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def test_helm_installer_and_helm_package(project):
    project.add("tasks_helm.yml", commit=False)
    project.write("chart/Chart.yaml", "apiVersion: v2\nname: demo\nversion: 0.1.0\n", commit=False)
    project.write("chart/templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: demo\n")
    run = project.run("tasks_helm.yml")
    assert run.out.get("helm", "").startswith("v")  # today: HelmInstaller@1 is refused
    assert "demo-0.1.0.tgz" in run.out.get("packaged", "")


def test_cache_restores_on_the_second_run(project):
    project.add("tasks_cache.yml")
    first = project.run("tasks_cache.yml")
    assert first.out.get("hit") == "false" and first.out.get("before") == "missing"
    second = project.run("tasks_cache.yml")
    assert second.out.get("hit") == "true"
    assert second.out.get("before") == f"cached-by-{first.run.id}"


def test_a_cloud_task_is_named_before_the_run_and_the_run_stops_there(project):
    project.add("cloud_task.yml")
    text = (project.root / ".pipelines" / "cloud_task.yml").read_text().splitlines()
    line = next(i for i, row in enumerate(text, 1) if "task: AzureCLI@2" in row)  # not the comment
    run = project.run("cloud_task.yml")
    plan = _plan(run)
    assert "AzureCLI@2" in plan and f"cloud_task.yml:{line}" in plan  # today: no plan record
    assert run.out.get("before") == "ran" and "after" not in run.out
    assert run.steps()["cloud"] == "Failed" and run.result == "failed"


def test_powershell_without_pwsh_is_named_before_the_run(project):
    project.add("pwsh_step.yml")
    run = project.run("pwsh_step.yml")
    if shutil.which("pwsh"):
        assert run.out.get("pwsh") == "ran"
    else:
        assert "pwsh" in _plan(run)  # today: no plan record
        assert run.steps()["powershell core"] == "Failed"
