"""The reuse key's formula is pinned: a change to it (a renamed field, a dropped part) silently makes every
recorded step unreusable, so it must be a deliberate change of this golden value, never an accident."""
import json
import sys

from ml_service.pipelines.definition import parse_pipeline
from ml_service.pipelines.reuse import digest_path, digest_text, step_key

PIPELINE = parse_pipeline("name: p\nrequirements: [req.txt]\n"
                          "steps: {a: {function: 'no_such_module_xyz:run', code: [src]}}")


def test_the_key_is_the_digest_of_exactly_these_parts(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "code.py").write_text("x = 1\n")
    (tmp_path / "req.txt").write_text("numpy==2.0\n")
    step = PIPELINE.steps[0]
    material = {
        "function": "no_such_module_xyz:run",
        "params": {"alpha": 0.5},
        "inputs": {"data": "d1"},
        "code": {"src": digest_path(tmp_path / "src")},
        "requirements": {"req.txt": digest_path(tmp_path / "req.txt")},
        "python": list(sys.version_info[:2]),
    }
    expected = digest_text(json.dumps(material, sort_keys=True, default=str))
    assert step_key(step, PIPELINE, {"alpha": 0.5}, {"data": "d1"}, tmp_path) == expected


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
