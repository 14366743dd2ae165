"""Step reuse (pipelines/reuse.py): a step is reused when its code, parameters, inputs and requirements are
unchanged, and run again when any of them changed.

Why each group exists: the key covers the pipeline's requirements (issue 19: they could be dropped unnoticed);
the key's formula is pinned to a golden value, because a change to it (a renamed field, a dropped part) silently
makes every recorded step unreusable, so it must be a deliberate change, never an accident; and the rules are
also checked through the real runner on a real MLflow store: `reuse: false` always runs, a changed requirements
file reruns every step, an unchanged step is reused and names the run it reused, `--no-reuse` runs everything."""
from __future__ import annotations

import json
import sys

import pytest

from ml_service.pipelines.definition import parse_pipeline
from ml_service.pipelines.reuse import digest_path, digest_text, function_file, step_key
from ml_service.pipelines.runner import REUSED_TAG, run_pipeline

PIPELINE = parse_pipeline("name: p\nsteps: {a: {function: json:dumps, code: [src]}}")
GOLDEN = parse_pipeline("name: p\nrequirements: [req.txt]\n"
                        "steps: {a: {function: 'no_such_module_xyz:run', code: [src]}}")


def pipeline_with(requirements: list[str]):
    text = "name: p\nrequirements: [%s]\nsteps: {a: {function: json:dumps}}" % ", ".join(requirements)
    return parse_pipeline(text)


def test_digest_of_a_folder_changes_with_content_and_names(tmp_path):
    (tmp_path / "x.txt").write_text("1")
    first = digest_path(tmp_path)
    (tmp_path / "x.txt").write_text("2")
    second = digest_path(tmp_path)
    (tmp_path / "x.txt").rename(tmp_path / "y.txt")
    assert len({first, second, digest_path(tmp_path)}) == 3


def test_step_key_changes_with_params_inputs_and_code(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "code.py").write_text("x = 1")
    step = PIPELINE.steps[0]
    base = step_key(step, PIPELINE, {"alpha": 1}, {"data": "d1"}, tmp_path)
    assert base == step_key(step, PIPELINE, {"alpha": 1}, {"data": "d1"}, tmp_path)
    assert base != step_key(step, PIPELINE, {"alpha": 2}, {"data": "d1"}, tmp_path)
    assert base != step_key(step, PIPELINE, {"alpha": 1}, {"data": "d2"}, tmp_path)
    (tmp_path / "src" / "code.py").write_text("x = 2")
    assert base != step_key(step, PIPELINE, {"alpha": 1}, {"data": "d1"}, tmp_path)


def test_a_changed_requirements_file_changes_every_step_key(tmp_path):
    (tmp_path / "requirements.txt").write_text("scikit-learn==1.5.0\n")
    pipeline = pipeline_with(["requirements.txt"])
    step = pipeline.steps[0]
    before = step_key(step, pipeline, {}, {}, tmp_path)
    assert before == step_key(step, pipeline, {}, {}, tmp_path)
    (tmp_path / "requirements.txt").write_text("scikit-learn==1.6.0\n")
    assert step_key(step, pipeline, {}, {}, tmp_path) != before


def test_declaring_requirements_changes_the_key_and_a_missing_file_is_left_out(tmp_path):
    (tmp_path / "requirements.txt").write_text("x\n")
    plain = pipeline_with([])
    declared = pipeline_with(["requirements.txt"])
    missing = pipeline_with(["absent.txt"])
    keys = {step_key(p.steps[0], p, {}, {}, tmp_path) for p in (plain, declared)}
    assert len(keys) == 2
    assert step_key(missing.steps[0], missing, {}, {}, tmp_path) == step_key(plain.steps[0], plain, {}, {}, tmp_path)


def test_the_function_and_its_module_are_part_of_the_key(tmp_path):
    one = parse_pipeline("name: p\nsteps: {a: {function: json:dumps}}")
    other = parse_pipeline("name: p\nsteps: {a: {function: json:loads}}")
    assert step_key(one.steps[0], one, {}, {}, tmp_path) != step_key(other.steps[0], other, {}, {}, tmp_path)
    assert function_file("json:dumps").name == "__init__.py" and function_file("no_such_module_xyz:f") is None


def test_digests_are_sha256_of_content_and_names(tmp_path):
    import hashlib

    (tmp_path / "f.txt").write_bytes(b"abc")
    assert digest_path(tmp_path / "f.txt") == hashlib.sha256(b"abc").hexdigest()
    assert digest_text("abc") == hashlib.sha256(b"abc").hexdigest()
    (tmp_path / "__pycache__").mkdir()
    folder = digest_path(tmp_path)
    (tmp_path / "__pycache__" / "x.pyc").write_bytes(b"compiled")
    assert digest_path(tmp_path) == folder  # caches are not code
    empty = tmp_path / "empty"
    empty.mkdir()
    assert digest_path(empty) == hashlib.sha256().hexdigest()
    try:
        digest_path(tmp_path / "nowhere")
    except FileNotFoundError:
        pass
    else:
        raise AssertionError("a missing path has no digest")


def test_the_key_is_the_digest_of_exactly_these_parts(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "code.py").write_text("x = 1\n")
    (tmp_path / "req.txt").write_text("numpy==2.0\n")
    step = GOLDEN.steps[0]
    material = {
        "function": "no_such_module_xyz:run",
        "params": {"alpha": 0.5},
        "inputs": {"data": "d1"},
        "code": {"src": digest_path(tmp_path / "src")},
        "requirements": {"req.txt": digest_path(tmp_path / "req.txt")},
        "python": list(sys.version_info[:2]),
    }
    expected = digest_text(json.dumps(material, sort_keys=True, default=str))
    assert step_key(step, GOLDEN, {"alpha": 0.5}, {"data": "d1"}, tmp_path) == expected


def test_skipped_paths_leave_the_digest_but_later_files_still_count(tmp_path):
    (tmp_path / "a.txt").write_text("skipped\n")
    (tmp_path / "b.txt").write_text("counted\n")
    before = digest_path(tmp_path, skip=("a.txt",))
    (tmp_path / "a.txt").write_text("changed, but skipped\n")
    assert digest_path(tmp_path, skip=("a.txt",)) == before
    (tmp_path / "b.txt").write_text("changed and counted\n")  # after the skipped one in sorted order
    assert digest_path(tmp_path, skip=("a.txt",)) != before


def test_a_change_in_the_steps_own_module_changes_its_key(tmp_path, monkeypatch):
    code = tmp_path / "code"
    code.mkdir()
    (code / "reuse_probe_module.py").write_text("def run(inputs, params, output_dir, context):\n    return {}\n")
    monkeypatch.syspath_prepend(str(code))
    pipeline = parse_pipeline("name: p\nsteps: {a: {function: 'reuse_probe_module:run'}}")
    step = pipeline.steps[0]
    before = step_key(step, pipeline, {}, {}, tmp_path)
    (code / "reuse_probe_module.py").write_text("def run(inputs, params, output_dir, context):\n    return {1: 2}\n")
    assert step_key(step, pipeline, {}, {}, tmp_path) != before


@pytest.mark.integration
def test_reuse_false_runs_every_time_and_requirements_are_in_the_key(workspace, tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("numpy==2.0\n")
    pipeline = parse_pipeline(f"""
name: reuse-check
requirements: ["{requirements}"]
steps:
  cached: {{function: "tests.support.steps:write_output", params: {{which: cached}}}}
  always: {{function: "tests.support.steps:write_output", after: [cached], reuse: false}}
""")
    first = run_pipeline(workspace, pipeline)
    assert first.ok, first.error
    assert [s.status for s in first.steps] == ["done", "done"]

    second = run_pipeline(workspace, pipeline)
    by_name = {s.name: s for s in second.steps}
    assert by_name["cached"].status == "reused" and by_name["cached"].source_run_id == first.steps[0].source_run_id
    assert by_name["always"].status == "done"  # reuse: false runs again
    assert by_name["always"].run_id not in (first.steps[1].run_id, "")

    from ml_service.workspace.tracking import connect

    client = connect(workspace)
    assert client.get_run(by_name["cached"].run_id).data.tags[REUSED_TAG] == first.steps[0].source_run_id
    assert REUSED_TAG not in client.get_run(by_name["always"].run_id).data.tags

    requirements.write_text("numpy==2.1\n")  # a new environment: nothing may be reused
    third = run_pipeline(workspace, pipeline)
    assert [s.status for s in third.steps] == ["done", "done"]
    assert REUSED_TAG not in client.get_run(third.steps[0].run_id).data.tags

    forced = run_pipeline(workspace, pipeline, reuse_steps=False)  # --no-reuse
    assert [s.status for s in forced.steps] == ["done", "done"]
