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
