"""The reuse key covers the pipeline's requirements (issue 19: they could be dropped unnoticed)."""
from ml_service.pipelines.definition import parse_pipeline
from ml_service.pipelines.reuse import digest_path, digest_text, function_file, step_key


def pipeline_with(requirements: list[str]):
    text = "name: p\nrequirements: [%s]\nsteps: {a: {function: json:dumps}}" % ", ".join(requirements)
    return parse_pipeline(text)


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
