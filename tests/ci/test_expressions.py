"""Azure Pipelines expressions (conditions, ${{ }} and $[ ]): literals, Azure's type casting in comparisons
(the right operand converted to the left one's type), each comparison on both sides of its boundary, the
string functions, status functions and truthiness. Properties over the casting table run with Hypothesis."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml_service.ci.model import expressions as ex

ASCII = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12)
INTS = st.integers(min_value=-10**6, max_value=10**6)


def run(text, roots=None, status=None):
    return ex.run(text, ex.Context(roots or {}, status))


def lit(value) -> str:
    """value as an expression literal."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + value.replace("'", "''") + "'"


def call(name: str, *values):
    return run(f"{name}({', '.join(lit(v) for v in values)})")


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


# --- eq with a boolean on the left: the right operand becomes a boolean -----------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("eq(true, 'true')", True), ("eq(true, 'True')", True), ("eq(true, 'TRUE')", True), ("eq(true, ' true ')", True),
    ("eq(true, 'false')", False), ("eq(true, 'False')", False),
    ("eq(false, 'false')", True), ("eq(false, 'False')", True), ("eq(false, 'true')", False),
    ("ne(true, 'false')", True), ("ne(false, 'false')", False),
    ("eq(true, 1)", True), ("eq(true, 0)", False), ("eq(false, 0)", True),
    ("eq(false, '')", True), ("eq(true, '')", False), ("eq(false, null)", True), ("eq(true, 'yes')", True),
])
def test_a_boolean_compared_with_text_reads_true_and_false_as_booleans(text, expected):
    """`${{ if eq(parameters.publish, 'false') }}` with a boolean parameter: 'false' is false, never a
    non-empty (so true) string. The only case tested before, eq(true, 'True'), holds either way."""
    assert run(text) is expected


@given(flag=st.booleans(), word=st.sampled_from(["true", "false"]),
       upper=st.lists(st.booleans(), min_size=5, max_size=5))
def test_any_spelling_of_true_and_false_casts_to_that_boolean(flag, word, upper):
    spelled = "".join(c.upper() if up else c for c, up in zip(word, upper))
    assert call("eq", flag, spelled) is (flag == (word == "true"))
    assert call("ne", flag, spelled) is (flag != (word == "true"))


# --- eq with a number on the left: the right operand becomes a number --------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("eq(1, '1')", True), ("eq(1, ' 1 ')", True), ("eq(1, '1.0')", True), ("eq(2, '1')", False),
    ("eq(1, 'one')", False), ("ne(1, 'one')", True), ("eq(1, true)", True), ("eq(0, false)", True),
    ("eq(0, null)", True), ("eq(1.5, '1.5')", True), ("eq(-3, '-3')", True),
])
def test_a_number_compared_with_text_converts_the_text(text, expected):
    assert run(text) is expected


@given(a=INTS, b=INTS)
def test_numbers_compare_as_numbers_even_when_the_right_one_is_text(a, b):
    assert call("eq", a, str(b)) is (a == b)
    assert call("gt", a, str(b)) is (a > b)
    assert call("ge", a, str(b)) is (a >= b)
    assert call("lt", a, str(b)) is (a < b)
    assert call("le", a, str(b)) is (a <= b)


@given(a=st.one_of(INTS, st.integers(min_value=-4 * 10**6, max_value=4 * 10**6).map(lambda n: n / 4)), b=INTS)
def test_exactly_one_of_lt_eq_gt_holds_and_ge_le_agree(a, b):
    lt, eq, gt = call("lt", a, b), call("eq", a, b), call("gt", a, b)
    assert [lt, eq, gt].count(True) == 1
    assert call("ge", a, b) is (gt or eq) and call("le", a, b) is (lt or eq)
    assert call("ne", a, b) is (not eq)


@pytest.mark.parametrize("name, equal, above, below", [
    ("gt", False, True, False), ("ge", True, True, False), ("lt", False, False, True), ("le", True, False, True),
])
def test_each_ordering_on_both_sides_of_its_boundary(name, equal, above, below):
    assert call(name, 5, 5) is equal and call(name, 6, 5) is above and call(name, 4, 5) is below
    assert call(name, "b", "B") is equal and call(name, "c", "B") is above and call(name, "a", "B") is below


def test_numbers_are_never_ordered_as_text():
    assert run("gt(10, 9)") is True and run("gt(10, '9')") is True and run("lt(9, '10')") is True
    assert run("gt('10', '9')") is False  # two strings: text order, as on Azure


def test_an_ordering_of_a_number_and_text_that_is_no_number_is_an_error():
    with pytest.raises(ex.ExpressionError, match="cannot compare"):
        run("gt(1, 'abc')")


# --- strings and null -------------------------------------------------------------------------------------------

@given(a=ASCII, b=ASCII)
def test_strings_compare_without_case(a, b):
    assert call("eq", a, b) is (a.lower() == b.lower())
    assert call("lt", a, b) is (a.upper() < b.upper())  # .NET OrdinalIgnoreCase upper-cases: '_' > 'Z'
    assert call("lt", "a_", "aZ") is False
    assert call("contains", a, b) is (b.lower() in a.lower())
    assert call("startsWith", a, b) is a.lower().startswith(b.lower())
    assert call("endsWith", a, b) is a.lower().endswith(b.lower())


@pytest.mark.parametrize("text, expected", [
    ("eq('True', true)", True), ("eq('False', false)", True), ("eq('true', false)", False),
    ("eq('1', 1)", True), ("eq('1.0', 1)", False), ("eq('', null)", True), ("eq('x', null)", False),
    ("eq(null, '')", True), ("eq(null, null)", True), ("eq(null, 'x')", False),
    ("eq(variables.missing, '')", True), ("eq(variables.missing, 'x')", False),
])
def test_text_and_null_on_the_left(text, expected):
    assert run(text, {"variables": {}}) is expected


@given(needle=ASCII, hay=st.lists(ASCII, max_size=4))
def test_in_and_notin_are_eq_against_each_candidate(needle, hay):
    expected = any(n.lower() == needle.lower() for n in hay)
    assert call("in", needle, *hay) is expected
    assert call("notIn", needle, *hay) is (not expected)


def test_in_never_counts_the_needle_itself():
    assert run("in('c', 'a', 'b')") is False and run("in('a')") is False
    assert run("notIn('a', 'a')") is False and run("notIn('a')") is True


def test_contains_value_length_split_join_replace_upper_coalesce():
    roots = {"parameters": {"items": ["Alpha", "beta"], "map": {"k": "V"}, "empty": []}}
    assert run("containsValue(parameters.items, 'ALPHA')", roots) is True
    assert run("containsValue(parameters.items, 'gamma')", roots) is False
    assert run("containsValue(parameters.map, 'v')", roots) is True
    assert run("length(parameters.items)", roots) == 2 and run("length('abc')") == 3 and run("length(1)") == 0
    assert run("split('a,b,,c', ',')") == ["a", "b", "", "c"]
    assert run("join(';', parameters.items)", roots) == "Alpha;beta" and run("join('-', 'one')") == "one"
    assert run("replace('a-b-c', '-', '+')") == "a+b+c" and run("upper('abc')") == "ABC"
    assert run("coalesce(parameters.empty, 'x')", roots) == []  # an empty list is a value
    assert run("coalesce(null, '')") is None


def test_property_and_index_access_ignore_case():
    roots = {"variables": {"Build.SourceBranch": "refs/heads/main"},
             "dependencies": {"A": {"outputs": {"step.var": "1"}, "result": "Succeeded"}}}
    assert run("variables['build.sourcebranch']", roots) == "refs/heads/main"
    assert run("dependencies.A.outputs['step.var']", roots) == "1"
    assert run("eq(dependencies.a.result, 'succeeded')", roots) is True
    assert run("eq(variables['missing'], '')", roots) is True


def test_list_indexes_inside_and_outside_the_list():
    roots = {"parameters": {"xs": ["a", "b"]}}
    assert run("parameters.xs[1]", roots) == "b" and run("parameters.xs[0]", roots) == "a"
    assert isinstance(run("parameters.xs[2]", roots), ex._Missing)
    assert isinstance(run("parameters.xs[-1]", roots), ex._Missing)


def test_and_short_circuits_and_status_functions_use_the_context():
    assert run("and(false, failed())", status=lambda name: 1 / 0) is False
    assert run("or(true, failed())", status=lambda name: 1 / 0) is True
    assert run("succeeded()", status=lambda name: name == "succeeded") is True
    assert run("and(true, 'x', 1)") is True and run("and(true, '', 1)") is False
    assert run("or(false, 0, '')") is False and run("not('')") is True and run("not('false')") is False


def test_empty_string_is_false_and_other_strings_true():
    assert ex.to_bool("") is False and ex.to_bool("false") is True and ex.to_bool(0) is False
    assert ex.to_bool(None) is False and ex.to_bool(0.0) is False and ex.to_bool(-1) is True
    assert ex.to_bool([]) is True  # an object is true


@pytest.mark.parametrize("value, expected", [
    ("true", True), (" Yes ", True), ("on", True), ("y", True), ("false", False), ("no", False), ("off", False),
    ("", False), ("nonsense", False), (True, True), (False, False), (1, True), (0, False), (None, False),
])
def test_a_yaml_boolean_setting_written_either_way(value, expected):
    assert ex.as_bool(value) is expected


@pytest.mark.parametrize("value, expected", [
    (True, "True"), (False, "False"), (None, ""), (2.0, "2"), (2.5, "2.5"), (7, "7"), ("x", "x"),
])
def test_string_conversion(value, expected):
    assert ex.to_str(value) == expected


def test_literals_are_read_without_case_and_strings_escape_quotes():
    assert run("TRUE") is True and run("False") is False and run("NULL") is None
    assert run("'It''s'") == "It's" and run("-2") == -2 and run("1.5") == 1.5


def test_malformed_expressions_are_errors():
    with pytest.raises(ex.ExpressionError):
        run("eq('a',")
    with pytest.raises(ex.ExpressionError, match="not supported"):
        run("frobnicate(1)")
    with pytest.raises(ex.ExpressionError, match="needs 2 argument"):
        run("eq(1)")
    with pytest.raises(ex.ExpressionError, match="unexpected"):
        run("eq(1, 2) extra")


@settings(max_examples=50)
@given(text=st.text(max_size=30))
def test_any_text_either_evaluates_or_is_an_expression_error(text):
    try:
        run(text)
    except ex.ExpressionError:
        pass


def test_named_status_functions_pass_the_names_to_the_context():
    seen = []

    def status(name, names=()):
        seen.append((name, names))
        return names == ("B",)
    assert run("succeeded('B')", status=status) is True and run("failed('A', 'B')", status=status) is False
    assert seen == [("succeeded", ("B",)), ("failed", ("A", "B"))]


def test_iif_evaluates_only_the_chosen_branch():
    assert run("iif(eq(1, 1), 'yes', failed())", status=lambda name: 1 / 0) == "yes"
    assert run("iif('', failed(), 'no')", status=lambda name: 1 / 0) == "no"
    with pytest.raises(ex.ExpressionError):
        run("iif(true, 'a')")


@pytest.mark.parametrize("a, b, expected", [(True, True, False), (True, False, True), (False, True, True),
                                            (False, False, False)])
def test_xor_is_true_when_exactly_one_is_true(a, b, expected):
    assert call("xor", a, b) is expected
    assert call("xor", "x" if a else "", "y" if b else "") is expected  # strings by truthiness


def test_trim_and_convert_to_json():
    assert call("trim", "  a b \t") == "a b"
    roots = {"parameters": {"list": ["a", 1], "map": {"k": "v"}}}
    assert run("convertToJson(parameters.list)", roots) == '[\n  "a",\n  1\n]'
    assert run("convertToJson(parameters.map)", roots) == '{\n  "k": "v"\n}'
    assert run("convertToJson(parameters.none)", roots) == "null"
