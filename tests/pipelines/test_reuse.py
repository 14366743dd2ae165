from ml_service.pipelines.definition import parse_pipeline
from ml_service.pipelines.reuse import digest_path, step_key

PIPELINE = parse_pipeline("name: p\nsteps: {a: {function: json:dumps, code: [src]}}")


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
