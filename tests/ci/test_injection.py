"""Injection: hostile parameters, branch names and variable values never run as code.

Each test plants a `touch MARKER` in a value and asserts the marker file never appears, while the
value still reaches the step as data through the environment.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ml_service.ci.model.template import Compiler
from ml_service.ci.server import service
from ml_service.config import load_settings
from tests.conftest import ROOT


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "mlops.yml").write_text("models:\n  - {project: p, name: m}\n")
    monkeypatch.setenv("MLOPS_ROOT", str(tmp_path))
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("MLOPS_MODEL", raising=False)
    return load_settings()


def run(settings, file: Path, params: dict | None = None, branch: str = "main"):
    store = service.open_store(settings)
    run_id = service.queue(settings, store, file, "Manual", params or {}, branch=branch, commit="c0ffee")
    service.execute(settings, store, run_id)
    records = {r["display"]: r for r in store.records(run_id)}
    logs = "".join(Path(r["log"]).read_text() for r in records.values() if r["log"] and Path(r["log"]).exists())
    return store.get_run(run_id), records, logs


def test_a_number_parameter_refuses_a_command_substitution(tmp_path):
    marker = tmp_path / "marker"
    pipeline = tmp_path / "p.yml"
    pipeline.write_text("parameters:\n  - name: alpha\n    type: number\n    default: 0.5\n"
                        "steps:\n  - bash: echo alpha=${{ parameters.alpha }}\n")
    (tmp_path / "mlops.yml").write_text("models:\n  - {project: p, name: m}\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MLOPS_ROOT": str(tmp_path),
           "MLOPS_STATE_DIR": str(tmp_path / "state")}
    for value in (f"$(touch {marker})", "nan", "1_000", "inf"):
        result = subprocess.run([sys.executable, "-m", "ml_service.cli", "ci", "run", str(pipeline), "--param",
                                 f"alpha={value}"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
        assert result.returncode != 0
        assert "parameter 'alpha' must be a number" in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists()
    ok = subprocess.run([sys.executable, "-m", "ml_service.cli", "ci", "run", str(pipeline), "--param", "alpha=2e-3"],
                        capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_a_hostile_branch_name_is_refused_in_script_text_and_is_data_in_env(project, tmp_path):
    marker = tmp_path / "marker"
    branch = f"feat/$(touch${{IFS}}{marker})"
    pipeline = tmp_path / "p.yml"
    pipeline.write_text("""\
steps:
  - bash: |
      echo "branch from env: $BUILD_SOURCEBRANCHNAME / $BRANCH"
    env:
      BRANCH: $(Build.SourceBranch)
    displayName: env form
  - bash: echo "spliced $(Build.SourceBranch)"
    displayName: spliced form
    condition: always()
""")
    result, records, logs = run(project, pipeline, branch=branch)
    assert not marker.exists()
    assert f"branch from env: marker) / refs/heads/{branch}" in logs  # SourceBranchName: the last segment
    spliced = records["spliced form"]
    assert spliced["result"] == "Failed" and "Build.SourceBranch holds shell syntax" in spliced["detail"]
    assert "pass it through env:" in spliced["detail"] and result.result == "failed"


def test_variable_values_holding_shell_syntax_never_run(project, tmp_path):
    marker = tmp_path / "marker"
    pipeline = tmp_path / "p.yml"
    pipeline.write_text(f"""\
variables:
  evil: $(touch {marker})
steps:
  - bash: |
      echo "static as env: $EVIL"
    displayName: static env
  - bash: echo $(evil)
    displayName: static spliced
    condition: always()
  - bash: echo "##vso[task.setvariable variable=late]\\$(touch {marker}); touch {marker}"
    displayName: set at run time
    condition: always()
  - bash: |
      echo "late as env: $LATE"
    displayName: late env
    condition: always()
  - bash: echo $(late)
    displayName: late spliced
    condition: always()
""")
    _, records, logs = run(project, pipeline)
    assert not marker.exists()
    assert f"static as env: $(touch {marker})" in logs
    assert f"late as env: $(touch {marker}); touch {marker}" in logs
    for name, variable in (("static spliced", "evil"), ("late spliced", "late")):
        assert records[name]["result"] == "Failed" and f"{variable} holds shell syntax" in records[name]["detail"]
    assert records["static env"]["result"] == records["late env"]["result"] == "Succeeded"


def test_nested_variable_references_expand_as_azure_expands_them(project, tmp_path):
    pipeline = tmp_path / "p.yml"
    pipeline.write_text("""\
variables:
  plain: x
  nested: pre-$(plain)-post
  twice: '[$(nested)]'
  unknown: keep-$(no.such.variable)
  loop: $(loop)
jobs:
  - job: J
    variables:
      inJob: job-$(twice)
    steps:
      - bash: |
          echo "spliced $(nested) $(twice) $(inJob)"
          echo "env $NESTED $TWICE $INJOB $UNKNOWN $LOOP"
""")
    result, _, logs = run(project, pipeline)
    assert result.result == "succeeded"
    assert "spliced pre-x-post [pre-x-post] job-[pre-x-post]" in logs
    assert "env pre-x-post [pre-x-post] job-[pre-x-post] keep-$(no.such.variable) $(loop)" in logs


def test_values_set_at_run_time_are_never_expanded_again(project, tmp_path):
    """A branch name, a value a step sets and a $[ ] result are data: a $(name) inside one stays as written, so
    a branch called feature-$(token) never reads the variable token (issue 29)."""
    pipeline = tmp_path / "p.yml"
    pipeline.write_text("""\
variables:
  token: from-a-variable
  computed: $[ format('{0}', '$(token)') ]
  combo: on-$(Build.SourceBranchName)
steps:
  - bash: echo '##vso[task.setvariable variable=later]set-$''(token)'
  - bash: echo "branch=$BRANCH later=$LATER computed=$COMPUTED combo=$COMBO"
    env: {BRANCH: $(Build.SourceBranchName), LATER: $(later), COMPUTED: $(computed), COMBO: $(combo)}
""")
    result, _, logs = run(project, pipeline, branch="feature-$(token)")
    assert result.result == "succeeded"
    assert "branch=feature-$(token) later=set-$(token) computed=$(token) combo=on-feature-$(token)" in logs
    assert "from-a-variable" not in logs


HOSTILE = "$(touch /tmp/h17-injected) `touch /tmp/h17-injected` ; touch /tmp/h17-injected"


def _scripts(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("script", "bash") and isinstance(value, str):
                yield value
            else:
                yield from _scripts(value)
    elif isinstance(node, list):
        for item in node:
            yield from _scripts(item)


@pytest.mark.parametrize("path", sorted((ROOT / ".pipelines").glob("*.yml")), ids=lambda p: p.name)
def test_shipped_pipelines_pass_string_parameters_through_env_never_script_text(path):
    from ml_service.ci.model.yamlload import load_file

    declared = load_file(path).get("parameters") or []
    strings = {p["name"]: HOSTILE for p in declared if p.get("type", "string") == "string" and "values" not in p}
    document = Compiler(ROOT).compile(path, strings)
    scripts = list(_scripts(document))
    assert scripts
    assert not [s for s in scripts if "h17-injected" in s]
    if strings:  # the values still arrive: as environment variables of the steps
        assert "h17-injected" in repr(document)
