"""A step's PATH holds nothing of the engine's own environment (issue 23 item 2: before, mlops's venv came
first, so a team's `python`/`pip install` ran in, and changed, the engine's environment); what a pipeline
prepends (task.prependpath) comes first for the rest of the job.

Azure: the agent starts a step with the agent's PATH (Agent.Worker/Handlers/StepHost.cs) and
##vso[task.prependpath] (docs/pipelines/scripts/logging-commands.md "PrependPath")."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_a_steps_path_holds_nothing_of_the_engines_environment(project):
    project.add("step_path.yml")
    run = project.run("step_path.yml")
    engine = Path(sys.prefix).resolve()
    entries = [Path(p).resolve() for p in run.out["path"].split(os.pathsep) if p]
    assert entries and not any(p == engine or engine in p.parents for p in entries)
    python3 = run.out["python3"]
    assert python3 == "none" or engine not in Path(python3).resolve().parents
    assert run.out["venv"] == "none" or engine not in Path(run.out["venv"]).resolve().parents
    first = run.out["after"].split(os.pathsep)[0]
    assert first.endswith("/tools")  # what the pipeline asked for comes first


def test_an_mlops_in_the_systems_python_leaves_the_systems_folders_on_path(monkeypatch):
    """Only a virtual environment is left out of a step's PATH: with mlops installed in the system's Python
    (sys.prefix /usr, no venv), /usr/bin stays (else a step could not find bash, git or make)."""
    from ml_service.ci.runner import macros

    monkeypatch.setenv("PATH", "/usr/local/bin:/usr/bin:/bin")
    monkeypatch.setattr(sys, "prefix", "/usr")
    monkeypatch.setattr(sys, "base_prefix", "/usr")
    assert macros.step_environment({}, {}, [])["PATH"] == "/usr/local/bin:/usr/bin:/bin"
    monkeypatch.setattr(sys, "prefix", "/opt/venv")  # a venv: its folders go, the system's stay
    monkeypatch.setenv("PATH", "/opt/venv/bin:/usr/bin")
    assert macros.step_environment({}, {}, ["/tools"])["PATH"] == "/tools:/usr/bin"
