import pytest

from ml_service.ci import expressions as ex
from ml_service.ci import triggers


def run(text, roots=None, status=None):
    return ex.run(text, ex.Context(roots or {}, status))


@pytest.mark.parametrize("text, expected", [
    ("eq('ABC', 'abc')", True),
    ("ne(1, '1')", False),
    ("eq(true, 'True')", True),
    ("in('b', 'a', 'b')", True),
    ("notIn('c', 'a', 'b')", True),
    ("contains('refs/heads/main', 'HEADS')", True),
    ("startsWith('refs/heads/feature/x', 'refs/heads/feature')", True),
    ("endsWith('model.pkl', '.PKL')", True),
    ("coalesce('', null, 'x')", "x"),
    ("not(eq(1, 2))", True),
    ("and(true, false)", False),
    ("or(false, 'non-empty string')", True),
    ("gt(10, 9)", True),
    ("format('{0}-{1}', 'a', 2)", "a-2"),
    ("lower('ABC')", "abc"),
])
def test_functions_follow_azure_casting(text, expected):
    assert run(text) == expected


def test_property_and_index_access_ignore_case():
    roots = {"variables": {"Build.SourceBranch": "refs/heads/main"},
             "dependencies": {"A": {"outputs": {"step.var": "1"}, "result": "Succeeded"}}}
    assert run("variables['build.sourcebranch']", roots) == "refs/heads/main"
    assert run("dependencies.A.outputs['step.var']", roots) == "1"
    assert run("eq(dependencies.a.result, 'succeeded')", roots) is True
    assert run("eq(variables['missing'], '')", roots) is True


def test_and_short_circuits_and_status_functions_use_the_context():
    assert run("and(false, failed())", status=lambda name: 1 / 0) is False
    assert run("succeeded()", status=lambda name: name == "succeeded") is True


def test_empty_string_is_false_and_other_strings_true():
    assert ex.to_bool("") is False and ex.to_bool("false") is True and ex.to_bool(0) is False


def test_malformed_expressions_are_errors():
    with pytest.raises(ex.ExpressionError):
        run("eq('a',")
    with pytest.raises(ex.ExpressionError, match="not supported"):
        run("frobnicate(1)")


def test_branch_and_path_filters():
    spec = {"branches": {"include": ["main", "release/*"], "exclude": ["release/old"]},
            "paths": {"include": ["src"], "exclude": ["src/docs"]}}
    assert triggers.trigger_matches(spec, "main", ["src/a.py"])
    assert triggers.trigger_matches(spec, "release/1.0", ["src/a.py"])
    assert not triggers.trigger_matches(spec, "release/old", ["src/a.py"])
    assert not triggers.trigger_matches(spec, "feature", ["src/a.py"])
    assert not triggers.trigger_matches(spec, "main", ["README.md"])  # a path filter prevents the trigger
    assert not triggers.trigger_matches(spec, "main", ["src/docs/x.md"])
    assert triggers.trigger_matches(None, "any", [])
    assert not triggers.trigger_matches("none", "main", ["src/a.py"])
    assert triggers.trigger_matches({"branches": {"include": ["main"]}}, "main", None)
    assert triggers.resource_trigger_matches({"trigger": {"branches": {"include": ["main"]}}}, "main")
    assert not triggers.resource_trigger_matches({}, "main")
