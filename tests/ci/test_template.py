"""Template expansion as Azure Pipelines does it before a run (issue 19, mutation testing of template.py):
typed parameters and `values:`, `${{ }}` values, if/elseif/else and each insertion in mappings and
sequences, `template:` references, the limits, and the exact error (file, line, what) for each bad input.
In-process, on real files in tmp_path: the mutation tool sees every line these tests reach. Issue 29 added conditions on
typed parameters (a boolean compared with 'false')."""
from __future__ import annotations

import pytest

from ml_service.ci.model import template
from ml_service.ci.model.template import Compiler, TemplateError, read_yaml, resolve_parameters
from ml_service.ci.model.yamlload import Mapping, load_text


def write(folder, name: str, text: str):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def compile_text(folder, text: str, params: dict | None = None, name: str = "pipeline.yml"):
    return Compiler(folder).compile(write(folder, name, text), params)


def refused(call, *args, **kwargs) -> str:
    with pytest.raises(TemplateError) as caught:
        call(*args, **kwargs)
    return str(caught.value)


def typed(kind: str, value, name: str = "p"):
    return resolve_parameters([{"name": name, "type": kind}], {name: value}, "f.yml")[name]


# --- parameters: types ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    (True, True), (False, False), ("true", True), (" Yes ", True), ("ON", True), ("y", True),
    ("False", False), ("no", False), ("off", False), ("N", False),
])
def test_a_boolean_parameter_reads_azure_words_in_any_case(value, expected):
    assert typed("boolean", value) is expected


@pytest.mark.parametrize("value", ["perhaps", 1, 0, "", None, "truthy"])
def test_a_boolean_parameter_refuses_anything_else(value):
    assert refused(typed, "boolean", value, "b") == f"f.yml: parameter 'b' must be a boolean, got {value!r}"


@pytest.mark.parametrize("value, expected", [
    ("3", 3), (" 7 ", 7), ("-2", -2), ("+4", 4), (5, 5), ("2.5", 2.5), ("0.5", 0.5), (".5", 0.5),
    ("2.", 2.0), ("1e3", 1000.0), ("1E-3", 0.001), (2.0, 2.0), ("-0", 0),
])
def test_a_number_parameter_reads_numbers(value, expected):
    got = typed("number", value)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400", "-1e400", "1_000", "0x10", "$(touch x)", "",
                                   True, [1], {"a": 1}, None, "1 2"])
def test_a_number_parameter_refuses_what_is_not_a_finite_number(value):
    assert refused(typed, "number", value, "n") == f"f.yml: parameter 'n' must be a number, got {value!r}"


def test_a_long_refused_value_is_cut_in_the_message():
    message = refused(typed, "number", "x" * 500, "n")
    assert len(message) == 300 and message.startswith("f.yml: parameter 'n' must be a number, got 'xxx")
    allowed = [{"name": "s", "type": "string", "values": ["a"]}]
    message = refused(resolve_parameters, allowed, {"s": "y" * 500}, "f.yml")
    assert len(message) == 300 and message.startswith("f.yml: parameter 's' must be one of ['a'], got 'yyy")


def test_a_string_list_parameter():
    assert typed("stringList", ["a", 1, 2.5]) == ["a", "1", "2.5"]
    assert typed("stringList", "single") == ["single"]
    assert typed("stringList", []) == []
    for bad in ([True], [{"a": 1}], [["x"]], [None], False):
        assert refused(typed, "stringList", bad, "l") == "f.yml: parameter 'l' must be a list of strings"


def test_a_string_parameter():
    assert typed("string", True) == "True" and typed("string", False) == "False"
    assert typed("string", None) == "" and typed("string", 5) == "5" and typed("string", 2.5) == "2.5"
    assert typed("string", 2.0) == "2.0"  # the text YAML held, not a number formatted again
    assert typed("string", "{a: 1}") == "{a: 1}"  # text stays text, never read as YAML
    for bad in ({"a": 1}, [1]):
        assert refused(typed, "string", bad, "s") == "f.yml: parameter 's' must be a string"


def test_object_and_list_parameters_given_as_text_are_read_as_yaml():
    assert typed("object", "{a: 1, b: [x]}") == {"a": "1", "b": ["x"]}  # scalars keep their text, as on Azure
    assert typed("object", "[1, 2]") == ["1", "2"]
    assert typed("object", {"k": "v"}) == {"k": "v"} and typed("object", 3) == 3
    assert typed("object", "   ") == "   " and typed("object", "") == ""  # blank text stays as it is
    assert typed("stepList", "- bash: echo hi") == [{"bash": "echo hi"}]
    assert typed("step", "bash: echo hi") == {"bash": "echo hi"}
    assert typed("jobList", [{"job": "A"}]) == [{"job": "A"}]
    message = refused(typed, "object", "[unclosed", "o")
    assert message.startswith("f.yml: parameter 'o':") and "malformed YAML" in message


@pytest.mark.parametrize("kind", ["stepList", "jobList", "stageList", "deploymentList"])
def test_a_list_type_refuses_a_single_item(kind):
    assert refused(typed, kind, {"bash": "x"}, "l") == f"f.yml: parameter 'l' must be a list ({kind})"
    assert refused(typed, kind, "bash: x", "l") == f"f.yml: parameter 'l' must be a list ({kind})"


# --- parameters: declarations -----------------------------------------------------------------------------------

def test_defaults_given_values_and_the_default_type_string():
    declared = [{"name": "a", "default": 1}, {"name": "b", "type": "number", "default": "2"},
                {"name": "c", "type": "boolean"}]
    assert resolve_parameters(declared, {"c": "yes"}, "f.yml") == {"a": "1", "b": 2, "c": True}
    assert resolve_parameters(declared, {"a": "x", "b": 9, "c": False}, "f.yml") == {"a": "x", "b": 9, "c": False}
    assert refused(resolve_parameters, declared, {}, "f.yml") == \
        "f.yml: parameter 'c' is required and has no default"
    assert resolve_parameters([{"name": "d", "default": None}], {}, "f.yml") == {"d": ""}  # a null default is one


def test_no_declaration_and_the_old_shorthand():
    assert resolve_parameters(None, {}, "f.yml") == {} and resolve_parameters([], {}, "f.yml") == {}
    assert resolve_parameters({"a": 1, "b": "x"}, {}, "f.yml") == {"a": 1, "b": "x"}
    assert resolve_parameters({"a": 1}, {"a": "{k: v}"}, "f.yml") == {"a": {"k": "v"}}  # shorthand: object
    assert refused(resolve_parameters, None, {"a": 1}, "f.yml") == \
        "f.yml: unknown parameter(s) a (declared: none)"
    assert refused(resolve_parameters, "text", {}, "f.yml") == "f.yml: 'parameters' must be a list"


def test_unknown_parameters_are_named_with_the_declared_ones():
    declared = [{"name": "zeta"}, {"name": "alpha"}]
    assert refused(resolve_parameters, declared, {"y": 1, "x": 2, "alpha": 3}, "f.yml") == \
        "f.yml: unknown parameter(s) x, y (declared: alpha, zeta)"


def test_a_parameter_needs_a_name():
    for declared in ([{"type": "string"}], ["a"], [{"name": "a", "default": 1}, {"default": 1}]):
        assert refused(resolve_parameters, declared, {}, "f.yml") == "f.yml: every parameter needs a name"


def test_a_nameless_parameter_is_reported_even_when_an_unknown_one_is_given():
    """Found by mutation testing: the list of declared names could not be sorted with a nameless one (a crash)."""
    assert refused(resolve_parameters, [{"type": "string"}, {"name": "a"}], {"b": 1}, "f.yml") == \
        "f.yml: every parameter needs a name"


def test_unknown_keys_and_types_of_a_declaration():
    assert refused(resolve_parameters, [{"name": "a", "typo": 1, "defualt": 2}], {}, "f.yml") == \
        "f.yml: unknown key 'defualt' in parameter 'a' (expected one of: default, displayName, name, type, values)"
    located = load_text("parameters:\n  - name: a\n    type: string\n    valuez: [x]\n", "t.yml")["parameters"]
    assert refused(resolve_parameters, located, {}, "f.yml") == \
        "t.yml:4: unknown key 'valuez' in parameter 'a' (expected one of: default, displayName, name, type, values)"
    assert resolve_parameters([{"name": "a", "displayName": "A", "type": "string", "default": "x",
                                "values": ["x"]}], {}, "f.yml") == {"a": "x"}
    assert refused(resolve_parameters, [{"name": "a", "type": "text"}], {"a": 1}, "f.yml") == \
        "f.yml: parameter 'a' has unknown type 'text'"


def test_allowed_values_compare_as_azure_does_and_name_the_refused_item():
    spec = [{"name": "mode", "default": "fast", "values": ["fast", "Thorough"]}]
    assert resolve_parameters(spec, {"mode": "THOROUGH"}, "f.yml") == {"mode": "THOROUGH"}
    assert resolve_parameters(spec, {}, "f.yml") == {"mode": "fast"}
    assert refused(resolve_parameters, spec, {"mode": "sloppy"}, "f.yml") == \
        "f.yml: parameter 'mode' must be one of ['fast', 'Thorough'], got 'sloppy'"
    numbers = [{"name": "n", "type": "number", "values": [1, 2]}]
    assert resolve_parameters(numbers, {"n": "2"}, "f.yml") == {"n": 2}
    listed = [{"name": "l", "type": "stringList", "values": ["a", "b"]}]
    assert resolve_parameters(listed, {"l": ["a", "B"]}, "f.yml") == {"l": ["a", "B"]}
    assert refused(resolve_parameters, listed, {"l": ["a", "c"]}, "f.yml") == \
        "f.yml: parameter 'l' must be one of ['a', 'b'], got 'c'"
    assert refused(resolve_parameters, [{"name": "v", "values": "a"}], {"v": "a"}, "f.yml") == \
        "f.yml: 'values' of parameter 'v' must be a list"
    assert resolve_parameters([{"name": "v", "values": None}], {"v": "a"}, "f.yml") == {"v": "a"}


# --- the pipeline document --------------------------------------------------------------------------------------

def test_a_pipeline_is_expanded_with_its_parameters_and_compile_time_variables(tmp_path):
    text = ("parameters:\n  - {name: who, type: string, default: world}\n  - {name: n, type: number, default: 2}\n"
            "variables:\n  region: north\ntrigger: none\nsteps:\n  - bash: echo ${{ parameters.who }} in "
            "${{ variables.region }}\n    timeoutInMinutes: ${{ parameters.n }}\n")
    got = compile_text(tmp_path, text)
    assert got == {"variables": {"region": "north"}, "trigger": "none",
                   "steps": [{"bash": "echo world in north", "timeoutInMinutes": 2}]}
    assert isinstance(got, Mapping) and got.where("steps") == f"{tmp_path / 'pipeline.yml'}:7"
    assert compile_text(tmp_path, text, {"who": "ada", "n": "5"})["steps"] == [
        {"bash": "echo ada in north", "timeoutInMinutes": 5}]
    listed = "variables:\n  - {name: region, value: south}\nsteps:\n  - bash: '[${{ variables.region }}]'\n"
    assert compile_text(tmp_path, listed)["steps"] == [{"bash": "[south]"}]  # the list form too (issue 23)


def test_a_pipeline_that_is_not_a_mapping_is_refused(tmp_path):
    path = write(tmp_path, "list.yml", "- bash: x\n")
    assert refused(Compiler(tmp_path).compile, path) == f"{path}: a pipeline must be a mapping"
    path = write(tmp_path, "params.yml", "parameters:\n  - name: a\n    type: nope\nsteps: []\n")
    assert refused(Compiler(tmp_path).compile, path) == f"{path}:1: parameter 'a' has unknown type 'nope'"
    assert refused(Compiler(tmp_path).compile, tmp_path / "absent.yml") == f"{tmp_path / 'absent.yml'}: file not found"
    assert refused(read_yaml, write(tmp_path, "bad.yml", "a: [\n")).startswith(f"{tmp_path / 'bad.yml'}:2: malformed")


def test_expressions_keep_their_type_when_they_are_the_whole_value(tmp_path):
    text = ("parameters:\n  - {name: n, type: number, default: 3}\n  - {name: flag, type: boolean, default: true}\n"
            "  - {name: items, type: object, default: [a, b]}\n"
            "values:\n  number: '  ${{ parameters.n }}  '\n  items: ${{ parameters.items }}\n"
            "  flag: ${{ parameters.flag }}\n  text: v=${{ parameters.flag }} n=${{parameters.n}}\n"
            "  joined: ${{ parameters.items[0] }}-${{ parameters.items[1] }}\n  missing: ${{ parameters.nope }}\n"
            "  ${{ parameters.items[1] }}Key: renamed\n  7: seven\n  plain: no expression\n")
    assert compile_text(tmp_path, text)["values"] == {
        "number": 3, "items": ["a", "b"], "flag": True, "text": "v=True n=3", "joined": "a-b", "missing": None,
        "bKey": "renamed", "7": "seven", "plain": "no expression"}


def test_an_expression_error_names_the_file_and_the_line(tmp_path):
    path = write(tmp_path, "p.yml", "steps:\n  - bash: ok\n  - bash: ${{ eq(1, }}\n")
    assert refused(Compiler(tmp_path).compile, path) == f"{path}:3: expected more in expression:  eq(1, "
    path = write(tmp_path, "q.yml", "steps:\n  - ${{ if eq( }}:\n    - bash: x\n")
    assert refused(Compiler(tmp_path).compile, path) == f"{path}:1: expected more in expression: eq("
    assert refused(Compiler(tmp_path).expand, {"a": "${{ eq( }}"}, {}, tmp_path / "r.yml") == \
        f"{tmp_path / 'r.yml'}: expected more in expression:  eq( "  # a mapping that knows no lines


def test_an_error_of_an_included_template_keeps_its_own_file(tmp_path):
    write(tmp_path, "t.yml", "steps:\n  - bash: ok\n  - bash: ${{ eq( }}\n")
    path = write(tmp_path, "p.yml", "jobs:\n  - job: A\n    steps:\n      - template: t.yml\n")
    assert refused(Compiler(tmp_path).compile, path) == f"{tmp_path / 't.yml'}:3: expected more in expression:  eq( "


def test_keys_renamed_or_inserted_keep_their_lines(tmp_path):
    text = ("parameters:\n  - {name: enabled, type: boolean, default: true}\njob:\n  ${{ if parameters.enabled }}:\n"
            "    inserted: 1\n  name${{ parameters.enabled }}: 2\n  plain: 3\n")
    got = compile_text(tmp_path, text)["job"]
    assert got == {"inserted": "1", "nameTrue": "2", "plain": "3"}
    where = str(tmp_path / "pipeline.yml")
    assert [got.where(k) for k in ("inserted", "nameTrue", "plain")] == [f"{where}:5", f"{where}:6", f"{where}:7"]


# --- conditional insertion --------------------------------------------------------------------------------------

CHAIN = ("parameters:\n  - {name: mode, default: a}\nsteps:\n  - bash: first\n"
         "  - ${{ if eq(parameters.mode, 'a') }}:\n    - bash: by if\n"
         "  - ${{ elseif eq(parameters.mode, 'b') }}:\n    - bash: by elseif\n"
         "  - ${{ elseif eq(parameters.mode, 'c') }}:\n    - bash: by second elseif\n"
         "  - ${{ else }}:\n    - bash: by else\n  - bash: last\n")


@pytest.mark.parametrize("mode, inserted", [("a", "by if"), ("B", "by elseif"), ("c", "by second elseif"),
                                            ("z", "by else")])
def test_one_branch_of_an_if_chain_is_inserted_in_a_sequence(tmp_path, mode, inserted):
    steps = compile_text(tmp_path, CHAIN, {"mode": mode})["steps"]
    assert steps == [{"bash": "first"}, {"bash": inserted}, {"bash": "last"}]


def test_if_chains_in_a_mapping(tmp_path):
    text = ("parameters:\n  - {name: n, type: number, default: 1}\nvalues:\n  ${{ if eq(parameters.n, 1) }}:\n"
            "    one: true\n  ${{ elseif eq(parameters.n, 2) }}:\n    two: true\n  ${{ else }}:\n    other: true\n"
            "  ${{ if gt(parameters.n, 0) }}:\n    positive: true\n  ${{ if false }}:\n    never: true\n"
            "  ${{ if true }}:\n  kept: yes\n")
    assert compile_text(tmp_path, text)["values"] == {"one": "true", "positive": "true", "kept": "yes"}
    assert compile_text(tmp_path, text, {"n": 2})["values"] == {"two": "true", "positive": "true", "kept": "yes"}
    assert compile_text(tmp_path, text, {"n": -5})["values"] == {"other": "true", "kept": "yes"}


def test_an_insertion_is_taken_only_from_the_first_true_branch(tmp_path):
    text = "steps:\n  - ${{ if true }}:\n    - bash: one\n  - ${{ elseif true }}:\n    - bash: two\n" \
           "  - ${{ else }}:\n    - bash: three\n  - ${{ if true }}:\n    - bash: four\n"
    assert compile_text(tmp_path, text)["steps"] == [{"bash": "one"}, {"bash": "four"}]


@pytest.mark.parametrize("text, kind", [
    ("steps:\n  - ${{ elseif true }}:\n    - bash: x\n", "elseif"),
    ("steps:\n  - ${{ else }}:\n    - bash: x\n", "else"),
    ("steps:\n  - ${{ if false }}:\n    - bash: x\n  - bash: between\n  - ${{ else }}:\n    - bash: y\n", "else"),
    ("steps:\n  - ${{ if false }}:\n    - bash: x\n  - ${{ else }}:\n    - bash: y\n  - ${{ else }}:\n"
     "    - bash: z\n", "else"),
    ("steps:\n  - ${{ if true }}:\n    - bash: x\n  - ${{ else }}:\n    - bash: y\n  - ${{ elseif true }}:\n"
     "    - bash: z\n", "elseif"),
    ("job:\n  ${{ if false }}:\n    a: 1\n  b: 2\n  ${{ else }}:\n    c: 3\n", "else"),
])
def test_elseif_and_else_need_an_open_if(tmp_path, text, kind):
    path = write(tmp_path, "p.yml", text)
    message = refused(Compiler(tmp_path).compile, path)
    assert message.endswith(f"'${{{{ {kind} }}}}' without a preceding '${{{{ if }}}}'")
    assert message.startswith(str(path))


def test_an_insertion_in_a_mapping_must_be_a_mapping(tmp_path):
    path = write(tmp_path, "p.yml", "job:\n  ${{ if true }}:\n    - a\n")
    assert refused(Compiler(tmp_path).compile, path) == \
        f"{path}:1: a conditional insertion in a mapping must hold a mapping"


def test_sequence_items_inserted_in_order_and_other_shapes(tmp_path):
    text = ("steps:\n  - first\n  - ${{ if true }}: inserted scalar\n  - ${{ if true }}:\n      key: inserted map\n"
            "  - ${{ if true }}:\n  - {}\n  - ${{ if true }}:\n      extra: inserted\n"
            "    plain: mixed keys are a mapping\n"
            "  - last\n")
    assert compile_text(tmp_path, text)["steps"] == [
        "first", "inserted scalar", {"key": "inserted map"}, {},
        {"extra": "inserted", "plain": "mixed keys are a mapping"}, "last"]


def test_directives_are_recognised_with_spaces_and_only_as_strings(tmp_path):
    compiler = Compiler(tmp_path)
    context = {"parameters": {}, "variables": {}}
    assert compiler.expand({"  ${{ if true }}  ": {"a": 1}, 5: "five"}, context, tmp_path / "p.yml") == \
        {"a": 1, 5: "five"}
    assert compiler.expand({"${{ each x in split('a,b', ',') }}": {"${{ x }}": "${{ x }}"}}, context,
                           tmp_path / "p.yml") == {"a": "a", "b": "b"}


# --- each ---------------------------------------------------------------------------------------------------------

def test_each_over_a_list_a_mapping_and_nothing(tmp_path):
    text = ("parameters:\n  - {name: names, type: object, default: [a, b]}\n"
            "  - {name: env, type: object, default: {K1: v1, K2: v2}}\n  - {name: none, type: object, default: []}\n"
            "  - {name: nothing, type: object, default: ~}\n"
            "steps:\n  - ${{ each name in parameters.names }}:\n    - bash: echo ${{ name }}\n"
            "  - ${{ each pair in parameters.env }}:\n    - bash: ${{ pair.key }}=${{ pair.value }}\n"
            "  - ${{ each x in parameters.none }}:\n    - bash: never\n"
            "  - ${{ each x in parameters.nothing }}:\n    - bash: never\n"
            "vars:\n  ${{ each name in parameters.names }}:\n    ${{ name }}_set: ${{ name }}\n")
    got = compile_text(tmp_path, text)
    assert got["steps"] == [{"bash": "echo a"}, {"bash": "echo b"}, {"bash": "K1=v1"}, {"bash": "K2=v2"}]
    assert got["vars"] == {"a_set": "a", "b_set": "b"}


def test_each_needs_a_name_in_a_collection(tmp_path):
    path = write(tmp_path, "p.yml", "steps:\n  - ${{ each x }}:\n    - bash: x\n")
    assert refused(Compiler(tmp_path).compile, path) == f"{path}:1: malformed '${{{{ each }}}}': ${{{{ each x }}}}"
    path = write(tmp_path, "q.yml", "steps:\n  - ${{ each x in 'abc' }}:\n    - bash: x\n")
    assert refused(Compiler(tmp_path).compile, path) == \
        f"{path}:1: '${{{{ each }}}}' needs a list or a mapping, got 'abc'"
    path = write(tmp_path, "r.yml", "steps:\n  - ${{ each x in format('{0}', '" + "w" * 100 + "') }}:\n    - a\n")
    assert refused(Compiler(tmp_path).compile, path) == \
        f"{path}:1: '${{{{ each }}}}' needs a list or a mapping, got '{'w' * 60}'"


# --- limits -------------------------------------------------------------------------------------------------------

def test_the_expanded_size_limit_counts_every_node(tmp_path, monkeypatch):
    path = write(tmp_path, "p.yml", "steps:\n  - a\n  - b\n")  # mapping, list, two strings: 4 nodes
    monkeypatch.setattr(template, "MAX_EXPANDED", 4)
    assert Compiler(tmp_path).compile(path) == {"steps": ["a", "b"]}
    monkeypatch.setattr(template, "MAX_EXPANDED", 3)
    assert refused(Compiler(tmp_path).compile, path) == (
        f"{path}:1: the pipeline expands to more than 3 nodes (Azure limits the size of an expanded pipeline)")


def test_an_each_explosion_is_refused_before_it_is_expanded(tmp_path, monkeypatch):
    text = ("parameters:\n  - {name: outer, type: object, default: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}\n"
            "steps:\n  - ${{ each a in parameters.outer }}:\n    - ${{ each b in parameters.outer }}:\n"
            "      - bash: ${{ a }}-${{ b }}\n")
    path = write(tmp_path, "p.yml", text)
    compiler = Compiler(tmp_path)
    monkeypatch.setattr(template, "MAX_EXPANDED", 150)
    # the estimate of one outer item: a list (1) holding a mapping (1) whose each key (1) repeats 10 times a list
    # (1) of one mapping (1) with one key (1) and its value (1): 3 + 10 * 4 = 43 nodes; 10 items: 430
    assert refused(compiler.compile, path) == (
        f"{path}:3: the pipeline expands to more than 150 nodes (${{{{ each }}}} over 10 items, about 430 nodes)")
    assert compiler.nodes < 10  # nothing was expanded before the refusal
    monkeypatch.setattr(template, "MAX_EXPANDED", 432)  # 2 nodes expanded + 430 estimated: just fits
    steps = Compiler(tmp_path).compile(path)["steps"]
    assert len(steps) == 100 and steps[0] == {"bash": "1-1"} and steps[-1] == {"bash": "10-10"}


def test_the_estimate_counts_an_inner_each_that_reads_the_loop_variable_once(tmp_path, monkeypatch):
    text = ("parameters:\n  - {name: groups, type: object, default: [{items: [1, 2, 3]}, {items: [4]}]}\n"
            "steps:\n  - ${{ each g in parameters.groups }}:\n    - ${{ each i in g.items }}:\n"
            "      - bash: ${{ i }}\n")
    path = write(tmp_path, "p.yml", text)
    monkeypatch.setattr(template, "MAX_EXPANDED", 10)
    # g is the first group for the estimate: 3 + 3 * 4 = 15 nodes per group, 2 groups: 30
    assert refused(Compiler(tmp_path).compile, path) == (
        f"{path}:3: the pipeline expands to more than 10 nodes (${{{{ each }}}} over 2 items, about 30 nodes)")
    monkeypatch.setattr(template, "MAX_EXPANDED", 1000)
    assert Compiler(tmp_path).compile(path)["steps"] == [{"bash": "1"}, {"bash": "2"}, {"bash": "3"}, {"bash": "4"}]


def test_the_estimate_of_a_collection_it_cannot_read_yet_counts_once(tmp_path, monkeypatch):
    text = ("parameters:\n  - {name: names, type: object, default: [a, b, c]}\nsteps:\n"
            "  - ${{ each n in parameters.names }}:\n    - ${{ each x in eq( }}:\n      - bash: x\n")
    path = write(tmp_path, "p.yml", text)
    monkeypatch.setattr(template, "MAX_EXPANDED", 5)
    # per item: 3 + 1 * 4 = 7 nodes; 3 items: 21 (the inner collection is an error only its expansion reports)
    assert refused(Compiler(tmp_path).compile, path) == (
        f"{path}:3: the pipeline expands to more than 5 nodes (${{{{ each }}}} over 3 items, about 21 nodes)")
    monkeypatch.setattr(template, "MAX_EXPANDED", 1000)
    assert refused(Compiler(tmp_path).compile, path) == f"{path}:3: expected more in expression: eq("


def test_the_estimate_stops_counting_deeper_than_the_nesting_limit(tmp_path, monkeypatch):
    compiler = Compiler(tmp_path)
    monkeypatch.setattr(template, "MAX_DEPTH", 2)
    assert compiler._estimate([[[["a", "b"]]]], {}, tmp_path) == 1 + 1 + 1 + 1  # the innermost list counts as 1
    assert compiler._estimate({"k": "v"}, {}, tmp_path) == 3 and compiler._estimate("text", {}, tmp_path) == 1
    assert compiler._estimate({"k": 5, "n": None}, {}, tmp_path) == 5 and compiler._estimate(7, {}, tmp_path) == 1
    nested = {"a": {"b": {"c": {"d": "x"}}}}  # mappings count their depth too: {"d": ...} is past the limit
    assert compiler._estimate(nested, {}, tmp_path) == 1 + 1 + (1 + 1 + (1 + 1 + 1))
    assert compiler._estimate({"k": ["a", "b"]}, {}, tmp_path) == 1 + 1 + 3
    context = {"parameters": {"xs": {"a": 1, "b": 2}}}
    assert compiler._estimate({"${{ each x in parameters.xs }}": ["v"]}, context, tmp_path) == 1 + 1 + 2 * 2
    assert compiler._estimate({"${{ each x in parameters.none }}": ["v"]}, context, tmp_path) == 1 + 1 + 2
    assert compiler._estimate({"${{ if true }}": ["v"]}, context, tmp_path) == 1 + 1 + 2


# --- template references ------------------------------------------------------------------------------------------

def test_a_step_template_is_expanded_with_its_parameters_in_place(tmp_path):
    write(tmp_path, "templates/greet.yml",
          "parameters:\n  - {name: who, type: string}\n  - {name: loud, type: boolean, default: false}\nsteps:\n"
          "  - bash: hello ${{ parameters.who }}\n  - ${{ if parameters.loud }}:\n    - bash: HELLO\n")
    text = ("parameters:\n  - {name: name, default: ada}\nsteps:\n  - bash: before\n"
            "  - template: templates/greet.yml\n    parameters:\n      who: ${{ parameters.name }}\n      loud: 'yes'\n"
            "  - template: templates/greet.yml\n    parameters: {who: bob}\n  - bash: after\n")
    assert compile_text(tmp_path, text)["steps"] == [
        {"bash": "before"}, {"bash": "hello ada"}, {"bash": "HELLO"}, {"bash": "hello bob"}, {"bash": "after"}]


def test_template_paths_are_relative_to_the_including_file_or_to_the_root(tmp_path):
    write(tmp_path, "shared/inner.yml", "steps:\n  - bash: inner\n")
    write(tmp_path, "shared/outer.yml", "steps:\n  - template: inner.yml\n  - template: /shared/inner.yml\n")
    write(tmp_path, "sub/nested/pipeline.yml",
          "parameters:\n  - {name: which, default: outer}\nsteps:\n  - template: /shared/${{ parameters.which }}.yml\n"
          "  - template: ../../shared/inner.yml\n")
    got = Compiler(tmp_path).compile(tmp_path / "sub/nested/pipeline.yml")
    assert got["steps"] == [{"bash": "inner"}] * 3


def test_job_stage_and_variable_templates(tmp_path):
    write(tmp_path, "jobs.yml", "parameters:\n  - {name: n, type: number}\njobs:\n  - job: J${{ parameters.n }}\n")
    write(tmp_path, "stages.yml", "stages:\n  - stage: S\n")
    write(tmp_path, "vars.yml", "variables:\n  a: 1\n  b: ${{ variables.base }}\n")
    write(tmp_path, "varlist.yml", "variables:\n  - {name: c, value: 3}\n")
    write(tmp_path, "empty.yml", "steps:\n")
    write(tmp_path, "both.yml", "steps:\n  - bash: step wins\njobs:\n  - job: ignored\n")
    text = ("variables:\n  base: from pipeline\nvars:\n  - template: vars.yml\n  - template: varlist.yml\n"
            "jobs:\n  - template: jobs.yml\n    parameters: {n: 4}\nstages:\n  - template: stages.yml\n"
            "steps:\n  - template: empty.yml\n  - template: both.yml\n")
    got = compile_text(tmp_path, text)
    assert got["vars"] == [{"name": "a", "value": "1"}, {"name": "b", "value": "from pipeline"},
                           {"name": "c", "value": "3"}]
    assert got["jobs"] == [{"job": "J4"}] and got["stages"] == [{"stage": "S"}]
    assert got["steps"] == [{"bash": "step wins"}]


def test_a_template_sees_only_its_own_parameters(tmp_path):
    write(tmp_path, "t.yml", "steps:\n  - bash: '[${{ parameters.secret }}]'\n")
    text = "parameters:\n  - {name: secret, default: s}\nsteps:\n  - template: t.yml\n"
    assert compile_text(tmp_path, text)["steps"] == [{"bash": "[]"}]
    # a template that declares no parameters sees what it is passed, as on Azure (issue 23)
    assert compile_text(tmp_path, "steps:\n  - template: t.yml\n    parameters: {secret: x}\n")["steps"] == \
        [{"bash": "[x]"}]


def test_bad_template_references(tmp_path):
    write(tmp_path, "list.yml", "- bash: x\n")
    write(tmp_path, "nothing.yml", "trigger: none\n")
    write(tmp_path, "needs.yml", "parameters:\n  - name: must\nsteps: []\n")
    text = "steps:\n  - bash: a\n  - template: list.yml\n    condition: always()\n    name: x\n"
    path = write(tmp_path, "p.yml", text)
    assert refused(Compiler(tmp_path).compile, path) == \
        f"{path}:3: unknown key(s) condition, name beside 'template' (expected: template, parameters)"
    for name, message in (("list.yml", "a template must be a mapping"),
                          ("nothing.yml", "a template needs steps, jobs, stages or variables"),
                          ("needs.yml:1", "parameter 'must' is required and has no default")):
        file = name.split(":")[0]
        path = write(tmp_path, "p.yml", f"steps:\n  - template: {file}\n")
        assert refused(Compiler(tmp_path).compile, path) == f"{tmp_path / name}: {message}"
    path = write(tmp_path, "p.yml", "steps:\n  - template: absent.yml\n")
    assert refused(Compiler(tmp_path).compile, path) == f"{tmp_path / 'absent.yml'}: file not found"


def test_an_include_cycle_is_refused_with_the_chain_and_a_repeated_template_is_not_a_cycle(tmp_path):
    write(tmp_path, "a.yml", "steps:\n  - template: b.yml\n")
    write(tmp_path, "b.yml", "steps:\n  - bash: b\n  - template: a.yml\n")
    path = write(tmp_path, "p.yml", "steps:\n  - template: a.yml\n")
    assert refused(Compiler(tmp_path).compile, path) == \
        f"{tmp_path / 'b.yml'}:3: template include cycle: p.yml -> a.yml -> b.yml -> a.yml"
    write(tmp_path, "self.yml", "steps:\n  - template: self.yml\n")
    path = write(tmp_path, "q.yml", "steps:\n  - template: self.yml\n")
    assert refused(Compiler(tmp_path).compile, path).endswith("template include cycle: q.yml -> self.yml -> self.yml")
    write(tmp_path, "leaf.yml", "steps:\n  - bash: leaf\n")
    path = write(tmp_path, "r.yml", "steps:\n  - template: leaf.yml\n  - template: leaf.yml\n")
    assert Compiler(tmp_path).compile(path)["steps"] == [{"bash": "leaf"}, {"bash": "leaf"}]


def test_the_nesting_limit_counts_template_levels(tmp_path, monkeypatch):
    monkeypatch.setattr(template, "MAX_DEPTH", 2)
    write(tmp_path, "t1.yml", "steps:\n  - template: t2.yml\n")
    write(tmp_path, "t2.yml", "steps:\n  - bash: two levels\n")
    path = write(tmp_path, "p.yml", "steps:\n  - template: t1.yml\n")
    assert Compiler(tmp_path).compile(path)["steps"] == [{"bash": "two levels"}]
    write(tmp_path, "t2.yml", "steps:\n  - template: t3.yml\n")
    write(tmp_path, "t3.yml", "steps:\n  - bash: three levels\n")
    assert refused(Compiler(tmp_path).compile, path) == \
        f"{tmp_path / 't2.yml'}:2: templates nested more than 2 levels deep (Azure's limit)"


def test_the_file_limit_counts_every_inclusion(tmp_path, monkeypatch):
    monkeypatch.setattr(template, "MAX_FILES", 2)
    for name in ("x", "y", "z"):
        write(tmp_path, f"{name}.yml", f"steps:\n  - bash: {name}\n")
    path = write(tmp_path, "p.yml", "steps:\n  - template: x.yml\n  - template: y.yml\n")
    assert Compiler(tmp_path).compile(path)["steps"] == [{"bash": "x"}, {"bash": "y"}]
    path = write(tmp_path, "p.yml", "steps:\n  - template: x.yml\n  - template: y.yml\n  - template: z.yml\n")
    assert refused(Compiler(tmp_path).compile, path) == \
        f"{path}:4: more than 2 template files included (Azure's limit)"


def test_an_each_nested_under_a_key_multiplies_the_estimate(tmp_path, monkeypatch):
    text = ("parameters:\n  - {name: xs, type: object, default: [1, 2, 3]}\njobs:\n"
            "  - ${{ each a in parameters.xs }}:\n    - job: J${{ a }}\n      steps:\n"
            "        - ${{ each b in parameters.xs }}:\n          - bash: ${{ a }}${{ b }}\n")
    path = write(tmp_path, "p.yml", text)
    monkeypatch.setattr(template, "MAX_EXPANDED", 20)
    # one job: list (1) + mapping (1) + job key and value (2) + steps key (1) and list (1) + each mapping (1) and key
    # (1) + 3 times its list (4 nodes): 8 + 12 = 20 nodes; 3 jobs: 60
    assert refused(Compiler(tmp_path).compile, path) == (
        f"{path}:3: the pipeline expands to more than 20 nodes (${{{{ each }}}} over 3 items, about 60 nodes)")
    monkeypatch.setattr(template, "MAX_EXPANDED", 1000)
    jobs = Compiler(tmp_path).compile(path)["jobs"]
    assert [job["job"] for job in jobs] == ["J1", "J2", "J3"] and jobs[2]["steps"][1] == {"bash": "32"}


def test_every_expression_error_names_the_file_and_line(tmp_path):
    write(tmp_path, "t.yml", "parameters:\n  - name: a\nsteps:\n  - bash: ${{ parameters.a }}\n")
    cases = {
        "steps:\n  - bash: echo ${{ eq( }} in a string\n": ":2: expected more in expression:  eq( ",
        "steps:\n  - bash: x\n    ${{ eq( }}name: key\n": ":3: expected more in expression:  eq( ",
        "job:\n  ${{ if true }}:\n    inserted: ${{ eq( }}\n": ":3: expected more in expression:  eq( ",
        "steps:\n  - template: ${{ eq( }}\n": ":1: expected more in expression:  eq( ",
        "steps:\n  - template: t.yml\n    parameters:\n      a: ${{ eq( }}\n": ":4: expected more in expression:  eq( ",
    }
    for text, message in cases.items():
        path = write(tmp_path, "p.yml", text)
        assert refused(Compiler(tmp_path).compile, path) == f"{path}{message}"


def test_parameters_are_located_at_their_key(tmp_path):
    path = write(tmp_path, "p.yml", "trigger: none\nparameters:\n  - {name: a, type: number}\nsteps: []\n")
    assert refused(Compiler(tmp_path).compile, path) == f"{path}:2: parameter 'a' is required and has no default"
    path = write(tmp_path, "q.yml", "steps: []\n")
    assert refused(Compiler(tmp_path).compile, path, {"x": 1}) == f"{path}: unknown parameter(s) x (declared: none)"


def test_a_mapping_inserted_from_a_parameter(tmp_path):
    text = ("parameters:\n  - {name: extra, type: object, default: {}}\njob:\n  a: 1\n"
            "  ${{ if true }}: ${{ parameters.extra }}\n")
    got = compile_text(tmp_path, text, {"extra": {"b": 2}})["job"]
    assert got == {"a": "1", "b": 2} and got.where("a") == f"{tmp_path / 'pipeline.yml'}:4"
    context = {"parameters": {"extra": load_text("c: 3\n", "x.yml")}, "variables": {}}
    assert Compiler(tmp_path).expand({"${{ if true }}": "${{ parameters.extra }}"}, context, tmp_path / "p.yml") == \
        {"c": "3"}


def test_expand_includes_templates_without_a_pipeline_around_them(tmp_path):
    write(tmp_path, "Xdir/t.yml", "steps:\n  - bash: t\n")
    compiler = Compiler(tmp_path)
    context = {"parameters": {}, "variables": {}}
    assert compiler.expand([{"template": "/Xdir/t.yml"}], context, tmp_path / "p.yml") == [{"bash": "t"}]
    assert refused(compiler.expand, [{"template": "Xdir/t.yml", "when": 1}], context, tmp_path / "p.yml") == \
        f"{tmp_path / 'p.yml'}: unknown key(s) when beside 'template' (expected: template, parameters)"


# --- conditions on typed parameters (issue 29) ------------------------------------------------------------------------

GATED = ("parameters:\n  - {name: publish, type: boolean, default: true}\n  - {name: count, type: number, default: 2}\n"
         "  - {name: mode, type: string, default: 'false'}\nsteps:\n"
         "  - ${{ if eq(parameters.publish, 'false') }}:\n    - bash: not publishing\n"
         "  - ${{ if eq(parameters.publish, true) }}:\n    - bash: publishing\n"
         "  - ${{ if ne(parameters.publish, 'False') }}:\n    - bash: ne false\n"
         "  - ${{ if ge(parameters.count, 2) }}:\n    - bash: at least two\n"
         "  - ${{ if gt(parameters.count, 2) }}:\n    - bash: more than two\n"
         "  - ${{ if parameters.mode }}:\n    - bash: a non-empty string is true\n")


@pytest.mark.parametrize("given, expected", [
    ({}, ["publishing", "ne false", "at least two", "a non-empty string is true"]),
    ({"publish": "false"}, ["not publishing", "at least two", "a non-empty string is true"]),
    ({"publish": False, "count": "3", "mode": ""}, ["not publishing", "at least two", "more than two"]),
    ({"count": 1}, ["publishing", "ne false", "a non-empty string is true"]),
])
def test_a_boolean_parameter_compared_with_false_text_takes_the_false_branch(tmp_path, given, expected):
    """`${{ if eq(parameters.publish, 'false') }}` on a boolean parameter: 'false' is the boolean false."""
    steps = compile_text(tmp_path, GATED, given)["steps"]
    assert [step["bash"] for step in steps] == expected


EXTENDED = """
parameters:
- {name: target, type: string}
- {name: userSteps, type: stepList, default: []}
variables:
- {name: fromTemplate, value: t}
stages:
- stage: Build
  jobs:
  - job: Guard
    steps:
    - bash: echo guard ${{ parameters.target }}
    - ${{ each step in parameters.userSteps }}:
      - ${{ step }}
"""


def test_extends_puts_the_templates_stages_in_place_with_the_pipelines_parameters_and_variables(tmp_path):
    write(tmp_path, "templates/base.yml", EXTENDED)
    path = write(tmp_path, "pipe.yml", """
trigger: [main]
parameters: [{name: env, default: dev}]
variables: {region: west}
extends:
  template: templates/base.yml
  parameters:
    target: ${{ parameters.env }}-${{ variables.region }}
    userSteps: [{bash: echo mine}]
""")
    got = Compiler(tmp_path).compile(path, {"env": "prod"})
    assert got["trigger"] == ["main"] and "extends" not in got
    assert got["variables"] == [{"name": "region", "value": "west"}, {"name": "fromTemplate", "value": "t"}]
    assert got["stages"][0]["jobs"][0]["steps"] == [{"bash": "echo guard prod-west"}, {"bash": "echo mine"}]


def test_an_extends_template_may_extend_another_and_bad_extends_are_refused_with_the_line(tmp_path):
    write(tmp_path, "templates/base.yml", EXTENDED)
    middle = ("parameters: [{name: t, default: m}]\n"
              "extends: {template: base.yml, parameters: {target: '${{ parameters.t }}'}}\n")
    write(tmp_path, "templates/middle.yml", middle)
    path = write(tmp_path, "pipe.yml", "extends: {template: templates/middle.yml}\n")
    assert Compiler(tmp_path).compile(path)["stages"][0]["jobs"][0]["steps"] == [{"bash": "echo guard m"}]
    path = write(tmp_path, "bad.yml", "trigger: none\nextends: {template: templates/base.yml, other: 1}\n")
    assert refused(Compiler(tmp_path).compile, path) == f"{path}:2: unknown key(s) other in extends (expected: " \
                                                        "template, parameters)"
    path = write(tmp_path, "loop.yml", "extends: {template: loop.yml}\n")
    assert "template include cycle: loop.yml -> loop.yml" in refused(Compiler(tmp_path).compile, path)
    path = write(tmp_path, "missing.yml", "extends: {template: templates/base.yml}\n")
    assert "target" in refused(Compiler(tmp_path).compile, path)  # a required parameter of the template
