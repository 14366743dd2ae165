"""Constructs the corpus showed beyond the conformance suite: `name:` run numbers, `upload:`, logging commands
with a local meaning, and what the run's plan names before it starts (service containers, step targets,
System.AccessToken, a pipeline resource on a definition nobody here is)."""
from __future__ import annotations

import io
import time

import pytest

from ml_service.ci.runner import terminal
from tests.ci.helpers import all_logs, make_project, run_text

pytestmark = pytest.mark.integration


def _plan(store, run_id: int) -> str:
    return " ".join(r["detail"] or "" for r in store.records(run_id) if r["kind"] == "plan")


def test_the_run_number_follows_name_with_a_revision_per_format(tmp_path, monkeypatch):
    settings = make_project(tmp_path, monkeypatch)
    text = "name: $(Date:yyyyMMdd)$(Rev:.r)\nsteps:\n- script: echo \"NUMBER=$(Build.BuildNumber)\"\n"
    numbers = []
    for _ in range(2):
        store, run = run_text(settings, text)
        numbers.append(next(line.split("=", 1)[1] for line in all_logs(store, run.id).splitlines()
                            if line.startswith("NUMBER=")))
    day = time.strftime("%Y%m%d", time.localtime(store.get_run(run.id).created))
    assert numbers == [f"{day}.1", f"{day}.2"]


def test_upload_is_publish_and_setsecret_masks(tmp_path, monkeypatch):
    settings = make_project(tmp_path, monkeypatch)
    text = ("steps:\n- script: |\n    mkdir -p out && echo data > out/f.txt\n"
            "    echo '##vso[task.setsecret]hunter2-secret'\n    echo 'leak hunter2-secret'\n"
            "- upload: out\n  artifact: old\n")
    store, run = run_text(settings, text)
    assert run.result == "succeeded"
    assert (store.artifacts_dir(run.id) / "old" / "f.txt").read_text() == "data\n"
    assert "hunter2-secret" not in all_logs(store, run.id)


@pytest.mark.parametrize("text, named", [
    ("jobs:\n- job: J\n  services:\n    db: postgres:15\n  steps:\n  - script: echo ran\n", "service containers"),
    ("steps:\n- script: echo ran\n  target: builder\n", "target"),
    ("steps:\n- script: echo ran\n  env:\n    TOKEN: $(System.AccessToken)\n", "System.AccessToken"),
])
def test_what_has_no_local_meaning_is_named_before_the_run_and_does_not_run(tmp_path, monkeypatch, text, named):
    settings = make_project(tmp_path, monkeypatch)
    store, run = run_text(settings, text)
    assert named in _plan(store, run.id) and "pipeline.yml:" in _plan(store, run.id)
    assert run.result == "failed" and "ran" not in all_logs(store, run.id)


def test_a_pipeline_resource_on_an_unknown_definition_is_named_in_the_plan(tmp_path, monkeypatch):
    settings = make_project(tmp_path, monkeypatch)
    text = ("resources:\n  pipelines:\n  - pipeline: up\n    source: Somebody-Elses-CI\n    trigger: true\n"
            "steps:\n- script: echo ran\n")
    store, run = run_text(settings, text)
    assert "Somebody-Elses-CI" in _plan(store, run.id) and "pipeline.yml:4" in _plan(store, run.id)
    assert run.result == "succeeded"  # the resource only feeds triggers and variables: the steps run


def test_terminal_escapes_are_shown_escaped_unless_raw(tmp_path):
    log = tmp_path / "step.log"
    log.write_text("ok\x1b]52;c;ZXZpbA==\x07 \x1b[2J done\rforged\n")
    shown, raw = io.StringIO(), io.StringIO()
    terminal.stream(log, shown)
    terminal.stream(log, raw, raw=True)
    assert "\x1b" not in shown.getvalue() and "\r" not in shown.getvalue() and "\\x1b]52" in shown.getvalue()
    assert raw.getvalue() == log.read_bytes().decode()
