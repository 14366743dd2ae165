"""Bad pipeline YAML: every case is refused with its file and line and what was expected, the run
ends "failed" (never "interrupted", never a traceback), and nothing blows up on the way."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ml_service.ci.model import schema
from ml_service.ci.model.pipeline import EngineError, normalize
from ml_service.ci.model.yamlload import MAX_FILE_BYTES, YamlError, load_file, load_text
from ml_service.ci.server import service
from ml_service.config import load_settings
from tests.conftest import ROOT

ALIAS_BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
steps:
  - script: echo hi
    env: {X: *h}
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "mlops.yml").write_text("models:\n  - {project: p, name: m}\n")
    monkeypatch.setenv("MLOPS_ROOT", str(tmp_path))
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("MLOPS_MODEL", raising=False)
    return load_settings()


def refused(settings, file: Path, pattern: str):
    """Run file; it must fail with a CIError matching pattern, the run recorded as failed."""
    store = service.open_store(settings)
    run_id = service.queue(settings, store, file, "Manual")
    with pytest.raises(service.CIError) as caught:
        service.execute(settings, store, run_id)
    assert re.search(pattern, str(caught.value)), str(caught.value)
    run = store.get_run(run_id)
    assert (run.status, run.result) == ("completed", "failed")
    assert any(r["result"] == "Failed" and r["detail"] for r in store.records(run_id))
    return str(caught.value)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_an_alias_bomb_is_refused_while_it_is_read(project, tmp_path):
    bomb = write(tmp_path, "bomb.yml", ALIAS_BOMB)
    assert len(ALIAS_BOMB) < 600
    refused(project, bomb, r"bomb\.yml:\d+: the document expands to more than \d+ nodes")


def test_too_many_aliases_are_refused(project, tmp_path):
    many = "x: &x 1\nsteps:\n  - script: echo\n    env:\n" + "".join(f"      V{i}: *x\n" for i in range(150))
    refused(project, write(tmp_path, "many.yml", many), r"many\.yml:\d+: more than 100 YAML aliases")


def test_a_template_that_includes_itself_is_a_cycle(project, tmp_path):
    write(tmp_path, "t/self.yml", "steps:\n  - template: self.yml\n")
    pipeline = write(tmp_path, "p.yml", "steps:\n  - template: t/self.yml\n")
    refused(project, pipeline, r"self\.yml:2: template include cycle: p\.yml -> self\.yml -> self\.yml")


def test_two_templates_including_each_other_are_a_cycle(project, tmp_path):
    write(tmp_path, "a.yml", "steps:\n  - script: echo a\n  - template: b.yml\n")
    write(tmp_path, "b.yml", "steps:\n  - template: a.yml\n")
    pipeline = write(tmp_path, "p.yml", "steps:\n  - template: a.yml\n")
    refused(project, pipeline, r"b\.yml:2: template include cycle: p\.yml -> a\.yml -> b\.yml -> a\.yml")


def test_templates_nested_deeper_than_azure_allows(project, tmp_path):
    for level in range(25):
        write(tmp_path, f"t{level}.yml", f"steps:\n  - template: t{level + 1}.yml\n")
    write(tmp_path, "t25.yml", "steps:\n  - script: echo deep\n")
    pipeline = write(tmp_path, "p.yml", "steps:\n  - template: t0.yml\n")
    refused(project, pipeline, r"t19\.yml:2: templates nested more than 20 levels deep")


def test_more_template_files_than_azure_allows(project, tmp_path):
    write(tmp_path, "one.yml", "steps:\n  - script: echo one\n")
    pipeline = write(tmp_path, "p.yml", "steps:\n" + "  - template: one.yml\n" * 101)
    refused(project, pipeline, r"p\.yml:102: more than 100 template files included")


def test_an_each_expansion_beyond_the_limit_is_refused(project, tmp_path):
    items = ", ".join(str(i) for i in range(800))
    pipeline = write(tmp_path, "p.yml", f"""\
parameters:
  - name: items
    type: object
    default: [{items}]
steps:
  - ${{{{ each a in parameters.items }}}}:
    - ${{{{ each b in parameters.items }}}}:
      - script: echo ${{{{ a }}}} ${{{{ b }}}}
""")
    refused(project, pipeline, r"p\.yml:\d+: the pipeline expands to more than \d+ nodes")


def test_a_hundred_thousand_variables_are_refused_before_any_step(project, tmp_path):
    pipeline = write(tmp_path, "p.yml", "variables:\n" + "".join(f"  V{i}: x\n" for i in range(100_000)) +
                     "steps:\n  - script: echo hi > marker\n")
    refused(project, pipeline, r"p\.yml: larger than 1024 KB")  # over Azure's size: not even parsed
    pipeline.write_text("variables:\n" + "".join(f"  V{i}: x\n" for i in range(5000)) +
                        "steps:\n  - script: echo hi > marker\n")
    refused(project, pipeline, r"p\.yml:1: 5000 variables in the pipeline: more than 1000")
    assert not (tmp_path / "marker").exists()


@pytest.mark.parametrize("text, pattern", [
    ("jobs:\n  - job: J\n    timeoutInMinutes: abc\n    steps:\n      - script: echo\n",
     r"p\.yml:3: 'timeoutInMinutes' of job J must be a number \(0 or more\), got 'abc'"),
    ("steps:\n  - script: echo\n    timeoutInMinutes: [1]\n",
     r"p\.yml:3: 'timeoutInMinutes' of a script step must be a number"),
    ("steps:\n  - script: echo\n    retryCountOnTaskFailure: 'many'\n",
     r"p\.yml:3: 'retryCountOnTaskFailure' of a script step must be a whole number from 0 to 10"),
    ("steps:\n  - script: echo\n    continueOnError: perhaps\n",
     r"p\.yml:3: 'continueOnError' of a script step must be a boolean"),
    ("stagez:\n  - stage: S\n", r"p\.yml:1: unknown key 'stagez' in the pipeline \(expected one of: .*stages"),
    ("jobs:\n  - job: J\n    stepz:\n      - script: echo never\n",
     r"p\.yml:3: unknown key 'stepz' in a job \(expected one of: .*steps"),
    ("steps:\n  - script: echo\n    displayname: typo\n", r"p\.yml:3: unknown key 'displayname' in a script step"),
    ("steps:\n  - scrpt: echo\n", r"p\.yml:2: a step needs one of script, bash"),
    ("steps:\n  - script: echo a\n    script: echo b\n", r"p\.yml:3: duplicate key 'script' \(first at line 2\)"),
    ("stages:\n  - stage: S\n    jobs:\n      - job: J\n        steps:\n          - bash: [not, a, script]\n",
     r"p\.yml:6: 'bash' must be a string"),
    ("jobs:\n  - job: J\n    strategy:\n      matrix: {a: {x: 1}}\n      maxParalel: 2\n    steps:\n"
     "      - script: echo\n", r"p\.yml:5: unknown key 'maxParalel' in the strategy of job J"),
    ("steps:\n  - template: t.yml\n    paramters: {}\n", r"p\.yml:2: unknown key\(s\) paramters beside 'template'"),
    ("parameters:\n  - name: n\n    type: number\n    defualt: 1\nsteps:\n  - script: echo\n",
     r"p\.yml:4: unknown key 'defualt' in parameter 'n' \(expected one of: default, displayName, name, type, values\)"),
])
def test_unknown_keys_and_wrong_types_are_located_errors(project, tmp_path, text, pattern):
    write(tmp_path, "t.yml", "steps:\n  - script: echo\n")
    refused(project, write(tmp_path, "p.yml", text), pattern)


def test_a_template_error_is_located_in_the_template(project, tmp_path):
    write(tmp_path, "t.yml", "steps:\n  - script: echo\n  - bash: echo\n    stepz: 1\n")
    refused(project, write(tmp_path, "p.yml", "jobs:\n  - job: J\n    steps:\n      - template: t.yml\n"),
            r"t\.yml:4: unknown key 'stepz' in a bash step")


def test_the_cli_prints_one_line_and_no_traceback(tmp_path):
    (tmp_path / "mlops.yml").write_text("models:\n  - {project: p, name: m}\n")
    bomb = write(tmp_path, "bomb.yml", ALIAS_BOMB)
    env = {"PATH": "/usr/bin:/bin", "MLOPS_ROOT": str(tmp_path), "MLOPS_STATE_DIR": str(tmp_path / "state"),
           "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "ml_service.cli", "ci", "run", str(bomb)], capture_output=True,
                            text=True, cwd=ROOT, env=env, timeout=120)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "bomb.yml:" in result.stderr
    listing = subprocess.run([sys.executable, "-m", "ml_service.cli", "ci", "list"], capture_output=True, text=True,
                             cwd=ROOT, env=env, timeout=120).stdout
    assert "failed" in listing and "interrupted" not in listing


@pytest.mark.parametrize("path", sorted((ROOT / ".pipelines").glob("*.yml")), ids=lambda p: p.name)
def test_every_shipped_pipeline_passes_the_strict_checks(path):
    from ml_service.ci.model import schema
    from ml_service.ci.model.template import Compiler

    schema.check(Compiler(ROOT).compile(path), str(path))


def test_unknown_dependencies_and_cycles_are_located_and_refused_before_anything_runs(project, tmp_path):
    marker = tmp_path / "ran"
    text = f"""\
jobs:
  - job: A
    dependsOn: B
    steps:
      - bash: touch {marker}
  - job: B
    dependsOn: [A]
    steps:
      - bash: touch {marker}
"""
    refused(project, write(tmp_path, "cycle.yml", text), r"cycle\.yml:3: dependency cycle among A, B")
    refused(project, write(tmp_path, "unknown.yml", text.replace("dependsOn: [A]", "dependsOn: [Nope]")),
            r"unknown\.yml:7: job __default\.B depends on unknown job 'Nope' \(jobs of stage __default: A, B\)")
    assert not marker.exists()


def test_a_step_environment_over_the_kernel_limit_fails_the_step_with_the_reason(project, tmp_path):
    pipeline = write(tmp_path, "big.yml", """\
steps:
  - bash: python3 -c "print('##vso[task.setvariable variable=big]' + 'x' * 200000)"
  - bash: echo never
    displayName: after
""")
    store = service.open_store(project)
    run_id = service.queue(project, store, pipeline, "Manual")
    service.execute(project, store, run_id)
    after = next(r for r in store.records(run_id) if r["display"] == "after")
    assert after["result"] == "Failed" and "the step's environment is too large" in after["detail"]
    assert "largest: BIG" in Path(after["log"]).read_text()
    assert store.get_run(run_id).result == "failed"


def test_a_bad_template_expression_names_its_line(project, tmp_path):
    pipeline = write(tmp_path, "p.yml", "steps:\n  - script: echo\n    displayName: ${{ nosuchfunction(1) }}\n")
    refused(project, pipeline, r"p\.yml:3: .*nosuchfunction")


# --- each limit on both sides (issue 29) ------------------------------------------------------------------------------

@pytest.mark.parametrize("count, accepted", [(100, True), (101, False)])
def test_exactly_a_hundred_aliases_are_read(count, accepted):
    text = "x: &x 1\nsteps:\n  - script: echo\n    env:\n" + "".join(f"      V{i}: *x\n" for i in range(count))
    if accepted:
        assert len(load_text(text, "a.yml")["steps"][0]["env"]) == count
    else:
        with pytest.raises(YamlError, match=r"a\.yml:\d+: more than 100 YAML aliases"):
            load_text(text, "a.yml")


@pytest.mark.parametrize("size, accepted", [(MAX_FILE_BYTES, True), (MAX_FILE_BYTES + 1, False)])
def test_a_file_of_exactly_the_size_limit_is_read(tmp_path, size, accepted):
    head = "steps: []\n# "
    path = tmp_path / "big.yml"
    path.write_text(head + "x" * (size - len(head) - 1) + "\n")
    assert path.stat().st_size == size
    if accepted:
        assert load_file(path) == {"steps": []}
    else:
        with pytest.raises(YamlError, match="larger than 1024 KB"):
            load_file(path)


@pytest.mark.parametrize("count, accepted", [(1000, True), (1001, False)])
def test_a_variables_block_of_exactly_the_limit_is_accepted(count, accepted):
    document = {"variables": {f"V{i}": "x" for i in range(count)}, "steps": [{"script": "echo"}]}
    if accepted:
        schema.check(document, "p.yml")
    else:
        with pytest.raises(schema.SchemaError, match=f"{count} variables in the pipeline: more than 1000"):
            schema.check(document, "p.yml")


@pytest.mark.parametrize("value, accepted", [(0, True), (10, True), ("10", True), (11, False), (-1, False),
                                             (2.5, False), ("two", False), (True, False)])
def test_retry_count_on_task_failure_is_a_whole_number_from_0_to_10(value, accepted):
    document = {"steps": [{"script": "echo", "retryCountOnTaskFailure": value}]}
    if accepted:
        schema.check(document, "p.yml")
    else:
        with pytest.raises(schema.SchemaError, match="'retryCountOnTaskFailure' of a script step must be a whole "
                                                     "number from 0 to 10"):
            schema.check(document, "p.yml")


@pytest.mark.parametrize("value, accepted", [(0, True), ("0.5", True), (" 60 ", True), (-0.1, False), ("nan", False),
                                             ("inf", False), (False, False)])
def test_timeout_in_minutes_is_a_number_of_zero_or_more(value, accepted):
    document = {"jobs": [{"job": "J", "timeoutInMinutes": value, "steps": [{"script": "echo",
                                                                            "timeoutInMinutes": value}]}]}
    if accepted:
        schema.check(document, "p.yml")
        assert normalize(document)[0].jobs[0].timeout_minutes == float(str(value).strip())
    else:
        with pytest.raises(schema.SchemaError, match="'timeoutInMinutes' of job J must be a number"):
            schema.check(document, "p.yml")
        with pytest.raises(EngineError, match="timeoutInMinutes must be a non-negative number"):
            normalize(document)


DEPLOY_BODY = "  environment: qa\n  strategy:\n    runOnce:\n      deploy:\n        steps:\n        - script: echo hi\n"


JOB_BODY = "  steps:\n  - script: echo hi\n"


@pytest.mark.parametrize("key, body, line", [("job", JOB_BODY, 6), ("deployment", DEPLOY_BODY, 10)])
def test_a_second_job_of_one_name_is_located_at_its_name_not_at_its_first_key(key, body, line):
    text = f"jobs:\n- {key}: Same\n{body}- displayName: second\n  {key}: Same\n{body}"
    with pytest.raises(EngineError, match=rf"^a\.yml:{line}: .*\bSame\b.*\ba\.yml:2\b"):
        normalize(load_text(text, "a.yml"))
