"""`mlops ci lint`: untrusted values spliced into scripts are found (file, line, value, fix); the
shipped pipelines, their templates and what the scaffold generates have none."""
from __future__ import annotations

import subprocess
import sys

from ml_service.ci import scaffold
from ml_service.ci.model import lint
from tests.conftest import ROOT

SPLICED = """\
parameters:
  - name: message
    type: string
    default: hi
  - name: count
    type: number
    default: 2
  - name: loud
    type: boolean
    default: 'false'
variables:
  greeting: hello
  computed: $[ variables.greeting ]
steps:
  - bash: |
      echo "${{ parameters.message }}"
      echo "${{ parameters.count }} ${{ parameters.loud }} $(greeting) $(Agent.TempDirectory) $(Build.BuildId)"
      echo "$(Build.SourceBranch)"
      echo "$(computed) and $(step.output)"
  - script: echo "$(Build.SourceVersionMessage)"
  - bash: echo "$MESSAGE from $BUILD_SOURCEBRANCH"
    env:
      MESSAGE: ${{ parameters.message }}
  - task: Bash@3
    inputs:
      targetType: inline
      script: echo "$(System.PullRequest.SourceBranch)"
"""


def test_every_untrusted_value_is_reported_with_its_line_and_the_fix(tmp_path):
    path = tmp_path / "spliced.yml"
    path.write_text(SPLICED)
    findings, errors = lint.lint_files([path])
    assert not errors
    found = [(f.line, f.value) for f in findings]
    assert found == [(16, "${{ parameters.message }}"), (18, "$(Build.SourceBranch)"), (19, "$(computed)"),
                     (19, "$(step.output)"), (20, "$(Build.SourceVersionMessage)"),
                     (27, "$(System.PullRequest.SourceBranch)")]
    text = str(findings[0])
    assert text.startswith(f"{path}:16: parameter 'message' (type string)")
    assert 'env: {MESSAGE: ${{ parameters.message }}}' in text and '"$MESSAGE"' in text


def test_the_command_exits_non_zero_on_findings_and_zero_when_clean(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(SPLICED)
    good = tmp_path / "good.yml"
    good.write_text("steps:\n  - bash: echo \"$BRANCH\"\n    env:\n      BRANCH: $(Build.SourceBranch)\n")
    command = [sys.executable, "-m", "ml_service.cli", "ci", "lint"]
    result = subprocess.run([*command, str(bad), str(good)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 1
    assert f"{bad}:18: predefined variable $(Build.SourceBranch)" in result.stdout
    assert str(good) not in result.stdout
    clean = subprocess.run([*command, str(good)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert clean.returncode == 0, clean.stdout + clean.stderr


def test_the_shipped_pipelines_and_templates_have_no_findings():
    files = lint.default_files(ROOT)
    assert any(p.parent.name == "templates" for p in files) and len(files) >= 8
    findings, errors = lint.lint_files(files)
    assert not errors and not findings, "\n".join([*errors, *map(str, findings)])


def test_what_the_scaffold_generates_has_no_findings(tmp_path):
    written = scaffold.write_model_pipelines(tmp_path, "some_project", ["data/x.csv"], data="data/x.csv",
                                             contract="data/contract/x.json")
    findings, errors = lint.lint_files(written)
    assert len(written) == 3 and not errors and not findings


def test_an_unreadable_file_fails_the_lint_and_a_missing_one_is_a_usage_error(tmp_path, capsys):
    """cli/ci.py's exit codes, in-process: a file lint cannot read (malformed YAML) exits 1 even with no finding in
    the others, a missing file exits 2 before anything is read, clean files exit 0."""
    from ml_service.cli import main

    good = tmp_path / "good.yml"
    good.write_text("steps:\n  - bash: echo hi\n")
    broken = tmp_path / "broken.yml"
    broken.write_text("steps: [unclosed\n")
    assert main(["ci", "lint", str(good)]) == 0
    assert main(["ci", "lint", str(good), str(broken)]) == 1
    assert str(broken) in capsys.readouterr().out
    assert main(["ci", "lint", str(good), str(tmp_path / "missing.yml")]) == 2
