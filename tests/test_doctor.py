"""`mlops doctor` says what is missing and what to do, and exits non-zero when the flow cannot run: each check on
both sides of what it decides (free disk at the limit, a writable workspace, the hook where `git push` needs it),
the exit rule (a warning never fails), and `--fix` running the bootstrap script of what failed."""
import shutil
import socket
import subprocess
from collections import namedtuple

import pytest

from ml_service import doctor
from ml_service.cli import main
from ml_service.config import load_settings
from ml_service.doctor import FAIL, MIN_FREE_GB, OK, WARN, Check

pytestmark = pytest.mark.integration  # a real Docker engine (or none), real git, real scripts


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A repository of its own (mlops.yml, environment_setup/) with its workspace under state/."""
    root = tmp_path / "repo"
    root.mkdir()
    (root / "mlops.yml").write_text("models: [{project: p, name: m}]\n")
    for key in ("MLOPS_TRACKING_URI", "MLOPS_MODEL", "MLOPS_ARTIFACT_ROOT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MLOPS_ROOT", str(root))
    monkeypatch.setenv("MLOPS_STATE_DIR", str(root / "state"))
    return root


def check_named(checks, name):
    return next(c for c in checks if c.name == name)


def test_no_docker_engine_is_a_failure_with_the_one_command_to_run(repo, monkeypatch, capsys):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{repo}/no-engine.sock")
    checks = doctor.run_checks(load_settings())
    engine, image = check_named(checks, "docker engine"), check_named(checks, "base image")
    assert (engine.state, engine.script, engine.fix) == (FAIL, "docker_engine.sh",
                                                         "sudo bash environment_setup/docker_engine.sh")
    assert (image.state, image.script) == (FAIL, "base_image.sh")
    assert main(["doctor"]) == 1
    assert "sudo bash environment_setup/docker_engine.sh" in capsys.readouterr().out


def test_an_unreachable_workspace_server_is_a_failure_and_a_writable_store_is_not(repo, monkeypatch):
    assert doctor.workspace_check(load_settings()).state == OK
    assert not (repo / "state" / ".doctor").exists()  # the probe is gone again
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there
    monkeypatch.setenv("MLOPS_TRACKING_URI", f"http://127.0.0.1:{port}")
    down = doctor.workspace_check(load_settings())
    assert down.state == FAIL and f"127.0.0.1:{port}" in down.detail


@pytest.mark.parametrize("folder", ["/proc", "/sys/kernel"])
def test_an_existing_folder_nothing_can_be_written_to_is_a_failed_workspace(repo, monkeypatch, folder):
    """Root may write almost anywhere; the kernel's own file systems refuse even root (no chmod trick)."""
    monkeypatch.setenv("MLOPS_STATE_DIR", folder)
    assert doctor.workspace_check(load_settings()).state == FAIL


Usage = namedtuple("Usage", "total used free")


@pytest.mark.parametrize("free, state", [(MIN_FREE_GB * 1e9, OK), (MIN_FREE_GB * 1e9 + 1, OK),
                                         (MIN_FREE_GB * 1e9 - 1, WARN), (0, WARN)])
def test_free_disk_at_the_limit_is_enough_and_below_it_warns(repo, monkeypatch, free, state):
    """A stand-in for shutil.disk_usage: a disk with exactly the limit free cannot be had on demand here."""
    seen = []

    def disk_usage(path):
        seen.append(path)
        return Usage(10 * free + 1, 0, free)
    monkeypatch.setattr(shutil, "disk_usage", disk_usage)
    settings = load_settings()
    assert doctor.disk_check(settings).state == state
    assert seen == [settings.root]  # the state dir does not exist yet: its parent repository is measured
    settings.state_dir.mkdir()
    doctor.disk_check(settings)
    assert seen[-1] == settings.state_dir


def test_git_hooks_are_found_in_the_workspace_remote_and_missing_ones_warn(repo):
    settings = load_settings()
    assert doctor.git_check(settings) == Check("git", WARN, f"{repo} is not a git repository", "git init, then commit")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    assert doctor.git_check(settings).state == WARN and doctor.git_check(settings).name == "git hooks"
    decoy = repo / ".git" / "hooks" / "post-receive"  # a hook in the checkout is not the one `git push mlops` runs
    decoy.write_text("#!/bin/sh\n")
    assert doctor.git_check(settings).state == WARN
    hook = settings.state_dir / "ci" / "remote.git" / "hooks" / "post-receive"
    hook.parent.mkdir(parents=True)
    hook.write_text("#!/bin/sh\n")
    assert doctor.git_check(settings).state == OK


def scripts(repo, code: int = 0):
    """Bootstrap scripts under repo/environment_setup that record their arguments in calls.txt."""
    folder = repo / "environment_setup"
    folder.mkdir(exist_ok=True)
    for name in ("docker_engine.sh", "base_image.sh"):
        (folder / name).write_text(f'echo "{name} $*" >> {repo}/calls.txt\nexit {code}\n')
    return repo / "calls.txt"


def test_bootstrap_runs_the_checks_script_with_the_base_image_and_reports_its_outcome(repo, monkeypatch):
    monkeypatch.setenv("MLOPS_BASE_IMAGE", "my-base:1")
    calls = scripts(repo)
    settings = load_settings()
    assert doctor.bootstrap(settings, Check("base image", FAIL, "", script="base_image.sh"), "")
    assert doctor.bootstrap(settings, Check("docker engine", FAIL, "", script="docker_engine.sh"), "")
    assert calls.read_text().splitlines() == ["base_image.sh my-base:1", "docker_engine.sh "]
    scripts(repo, code=1)
    assert not doctor.bootstrap(settings, Check("base image", FAIL, "", script="base_image.sh"), "")


class Checks:
    """A stand-in for run_checks: hands out one list of checks per call (a broken machine cannot be made here)."""

    def __init__(self, *rounds):
        self.rounds = list(rounds)
        self.calls = 0

    def __call__(self, settings):
        self.calls += 1
        return self.rounds.pop(0) if len(self.rounds) > 1 else self.rounds[0]


BROKEN = [Check("docker engine", FAIL, "none", "fix it", "docker_engine.sh"), Check("disk", WARN, "low", "prune")]
MENDED = [Check("docker engine", OK, "Docker 1"), Check("disk", WARN, "low", "prune")]


def test_warnings_alone_pass_and_one_failure_fails(repo, monkeypatch):
    monkeypatch.setattr(doctor, "run_checks", Checks([Check("disk", WARN, "low"), Check("git", WARN, "no repo")]))
    assert main(["doctor"]) == 0
    monkeypatch.setattr(doctor, "run_checks", Checks([Check("disk", WARN, "low"), Check("python", FAIL, "3.9")]))
    assert main(["doctor"]) == 1


@pytest.mark.parametrize("fix, can, ran, code", [
    (True, "", ["docker_engine.sh "], 0),     # root: bootstrap what failed, check again
    (False, "", [], 1),                        # without --fix: nothing runs
    (True, None, [], 1),                       # no root, no password-less sudo: nothing runs
])
def test_fix_runs_the_bootstrap_of_what_failed_then_checks_again(repo, monkeypatch, fix, can, ran, code):
    calls = scripts(repo)
    checks = Checks(BROKEN, MENDED)
    monkeypatch.setattr(doctor, "run_checks", checks)
    monkeypatch.setattr(doctor, "can_bootstrap", lambda: can)
    assert main(["doctor", *(["--fix"] if fix else [])]) == code
    assert (calls.read_text().splitlines() if calls.exists() else []) == ran
    assert checks.calls == (2 if ran else 1)


def test_a_failed_bootstrap_stops_the_others(repo, monkeypatch):
    calls = scripts(repo, code=1)
    both = [Check("docker engine", FAIL, "", "", "docker_engine.sh"),
            Check("base image", FAIL, "", "", "base_image.sh")]
    monkeypatch.setattr(doctor, "run_checks", Checks(both))
    monkeypatch.setattr(doctor, "can_bootstrap", lambda: "")
    assert main(["doctor", "--fix"]) == 1
    assert calls.read_text().splitlines() == ["docker_engine.sh "]


@pytest.mark.docker
def test_a_ready_machine_passes_and_warns_about_what_is_optional(repo, docker_engine):
    checks = {c.name: c.state for c in doctor.run_checks(load_settings())}
    assert (checks["docker engine"], checks["base image"], checks["workspace"]) == (OK, OK, OK)
    assert checks["production"] in (OK, WARN) and FAIL not in checks.values()
    assert main(["doctor"]) == 0
