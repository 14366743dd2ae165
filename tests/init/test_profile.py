"""`mlops init`'s pieces on their own: reading and profiling a CSV, the contract it writes, the mlops.yml
entry, names, templates and the all-or-nothing writer."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import example, given, settings as hypothesis_settings, strategies as st

from ml_service.init import InitError
from ml_service.init.config_entry import add_model, yaml_scalar
from ml_service.init.names import MAX_LENGTH, ProjectNames, check_free, project_names
from ml_service.init.profile import (MAX_CATEGORIES, MAX_CLASSES, MIN_PER_CLASS, guess_task, profile_column,
                                     profile_frame)
from ml_service.init.reader import MIN_ROWS, read_table
from ml_service.init.scaffold import LINE, list_literal, render, smoke_records, template_files
from ml_service.init.suite import build_suite, numeric_bounds
from ml_service.init.writer import FileTransaction

# Every expectation type `ml_service.data.contract` is exercised with in this repository's suites.
KNOWN_EXPECTATIONS = {
    "expect_table_columns_to_match_ordered_list", "expect_table_row_count_to_be_between",
    "expect_column_values_to_not_be_null", "expect_column_values_to_be_in_type_list",
    "expect_column_values_to_be_between", "expect_column_values_to_be_in_set",
}


def table(rows: int = 40) -> pd.DataFrame:
    """Numbers (one with gaps), text with gaps, booleans, and a text target with two classes."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "age": rng.integers(20, 60, rows),
        "monthly income": np.linspace(-5.0, 95.0, rows),
        "plan-type": rng.choice(["basic", "plus"], rows),
        "active": rng.choice([True, False], rows),
        "label": ["yes", "no"] * (rows // 2),
    })
    frame.loc[[1, 5], "monthly income"] = np.nan
    frame.loc[[2], "plan-type"] = None
    return frame


@pytest.fixture
def csv(tmp_path):
    path = tmp_path / "data.csv"
    table().to_csv(path, index=False)
    return path


def test_profile_of_a_csv_file_types_categories_ranges_and_nulls(csv):
    profile = profile_frame(read_table(csv), "label")
    age, income, plan, active, label = profile.columns
    assert (age.kind, age.integer, age.nulls) == ("numeric", True, 0) and 20 <= age.minimum <= age.maximum < 60
    assert (income.kind, income.nulls, income.minimum, income.maximum) == ("numeric", 2, -5.0, 95.0)
    assert (plan.kind, plan.nulls, plan.categories) == ("categorical", 1, ("basic", "plus"))
    assert (active.kind, active.categories) == ("boolean", (False, True))
    assert profile.task == "classification" and profile.classes == ("no", "yes") and profile.metric == "roc_auc"
    assert [c.name for c in profile.features] == ["age", "monthly income", "plan-type", "active"]


@pytest.mark.parametrize("values, task", [
    (["a", "b"] * 20, "classification"),
    ([True, False] * 20, "classification"),
    (list(range(5)) * 8, "classification"),
    (list(range(40)), "regression"),
    ([0.5 * i for i in range(40)], "regression"),
])
def test_the_task_is_guessed_from_the_target(values, task):
    assert guess_task(profile_column("y", pd.Series(values)))[0] == task


def test_more_than_two_classes_are_measured_with_f1_macro():
    frame = table(60).assign(label=["a", "b", "c"] * 20)
    assert profile_frame(frame, "label").metric == "f1_macro"
    assert profile_frame(frame.assign(label=np.arange(60.0)), "label").metric == "r2"


@pytest.mark.parametrize("change, target, task, message", [
    ({}, "nope", None, "no target column 'nope'; the columns are: 'age', 'monthly income'"),
    ({"label": ["same"] * 40}, "label", None, "single class"),
    ({"label": ["a"] * 38 + ["b"] * 2}, "label", None, "fewer than 5 rows"),
    ({}, "label", "regression", "not numbers"),
    ({"age": [None] * 40}, "label", None, "'age' has no values"),
])
def test_bad_targets_and_columns_are_named(change, target, task, message):
    with pytest.raises(InitError, match=message):
        profile_frame(table().assign(**change), target, task)


def test_a_target_with_gaps_is_refused():
    frame = table()
    frame.loc[[0, 3], "label"] = None
    with pytest.raises(InitError, match="missing in 2 row"):
        profile_frame(frame, "label")


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"\x89PNG\r\n\x1a\n\0\0\0", "binary"),
    (b"1,2,3\n4,5,6\n", "no header line"),
    (b"a,b\n" + b"1,2\n" * (MIN_ROWS - 1), f"{MIN_ROWS - 1} data rows"),
    (b"a,b\n", "no data rows"),
    (b"a,a\n" + b"1,2\n" * MIN_ROWS, "more than once"),
    (b"a,,c\n" + b"1,2,3\n" * MIN_ROWS, "have no name"),
    (b" ,b,c\n" + b"1,2,3\n" * MIN_ROWS, "have no name"),
    (b"1,,x\n" + b"1,2,3\n" * MIN_ROWS, "no header line"),
    (b"just one column\n" + b"x\n" * MIN_ROWS, "has 1 column"),
])
def test_files_that_are_not_usable_tables_are_refused(tmp_path, content, message):
    path = tmp_path / "file.csv"
    path.write_bytes(content)
    with pytest.raises(InitError, match=message):
        read_table(path)


def test_missing_files_and_folders_are_refused(tmp_path):
    with pytest.raises(InitError, match="no such file"):
        read_table(tmp_path / "nope.csv")
    with pytest.raises(InitError, match="is a folder"):
        read_table(tmp_path)


def test_the_contract_lists_columns_rows_nulls_types_ranges_and_sets(csv):
    profile = profile_frame(read_table(csv), "label")
    suite = build_suite(profile, "churn", "data/churn.csv")
    by = {}
    for expectation in suite["expectations"]:
        by.setdefault(expectation["type"], {})[expectation["kwargs"].get("column", "")] = expectation["kwargs"]
    assert set(by) <= KNOWN_EXPECTATIONS and suite["name"] == "churn_data_contract"
    assert by["expect_table_columns_to_match_ordered_list"][""]["column_list"] == list(table().columns)
    assert by["expect_table_row_count_to_be_between"][""]["min_value"] == 20
    assert set(by["expect_column_values_to_not_be_null"]) == {"age", "active", "label"}
    assert set(by["expect_column_values_to_be_in_type_list"]) == {"age", "monthly income"}
    assert by["expect_column_values_to_be_between"]["monthly income"] == {
        "column": "monthly income", "min_value": -15, "max_value": 105}
    assert by["expect_column_values_to_be_in_set"]["plan-type"]["value_set"] == ["basic", "plus"]
    assert by["expect_column_values_to_be_in_set"]["active"]["value_set"] == [False, True]
    assert by["expect_column_values_to_be_in_set"]["label"]["value_set"] == ["no", "yes"]
    json.dumps(suite)  # plain JSON


@pytest.mark.parametrize("values, bounds", [
    ([0.05, 0.16], (0.039, 0.171)),      # 10% of the span on both sides, rounded outwards
    ([10, 110], (0, 120)),               # whole numbers stay whole
    ([0, 1, 1], (0, 1)),                 # a 0/1 column stays 0-1 (a span under 10 is not widened)
    ([1, 5], (1, 5)),
    ([3.5, 3.5], (3.15, 3.85)),          # no span: 10% of the value
    ([143.5, 2501.0], (0, 2740)),        # never below zero for a column without negative values
])
def test_numeric_bounds(values, bounds):
    assert numeric_bounds(profile_column("x", pd.Series(values))) == pytest.approx(bounds)


CONFIG = """\
# Workspace configuration: a comment that must survive.
workspace:
  state_dir: .mlops   # trailing comment

models:
  - project: first            # the first project
    name: first_model

# Deployment: this comment introduces the next section.
deploy:
  base_image: x
"""
ENTRY = {"project": "churn", "name": "churn_model", "task": "classification", "data": "data/churn.csv",
         "contract": "data/contract/churn_suite.json", "target": "Y", "dataset": "churn"}


def test_the_entry_is_inserted_at_the_end_of_models_and_nothing_else_changes():
    text = add_model(CONFIG, ENTRY)
    assert text.replace(
        '  - project: churn\n    name: churn_model\n    task: classification\n    data: data/churn.csv\n'
        '    contract: data/contract/churn_suite.json\n    target: "Y"\n    dataset: churn\n', "") == CONFIG
    assert text.index("project: churn") < text.index("# Deployment")
    assert yaml.safe_load(text)["models"][1] == ENTRY


@pytest.mark.parametrize("config", ["workspace: {}\n", "workspace: {}\nmodels: []\n", "models:\nci: {}",
                                    "models:\n- project: a\n  name: b\n"])
def test_the_entry_is_added_to_any_shape_of_models(config):
    models = yaml.safe_load(add_model(config, ENTRY))["models"]
    assert models[-1] == ENTRY and len(models) == len(yaml.safe_load(config).get("models") or []) + 1


def test_an_inline_models_list_is_refused():
    with pytest.raises(InitError, match="one line"):
        add_model("models: [{project: a, name: b}]\n", ENTRY)


@pytest.mark.parametrize("value, text", [("churn", "churn"), ("Y", '"Y"'), ("no", '"no"'), ("my col", '"my col"'),
                                         ("1.5", '"1.5"'), ("data/x.csv", "data/x.csv")])
def test_yaml_scalars_are_quoted_when_needed(value, text):
    assert yaml_scalar(value) == text and yaml.safe_load(yaml_scalar(value)) == value


@pytest.mark.parametrize("name, message", [
    ("caf\u00e9", "not a valid Python package"), ("my-model", "not a valid"), ("1st", "not a valid"),
    ("class", "keyword"), ("json", "standard library"), ("x" * 41, "at most 40"),
])
def test_bad_project_names_are_refused(name, message):
    with pytest.raises(InitError, match=message):
        project_names(name)


def test_names_default_to_the_project():
    names = project_names("churn")
    assert names == ProjectNames("churn", "churn_model", "churn")
    assert (names.data, names.contract) == ("data/churn.csv", "data/contract/churn_suite.json")
    assert names.pipelines == [".pipelines/churn-build.yml", ".pipelines/churn-retrain.yml",
                               ".pipelines/churn-release.yml"]


def test_lists_of_column_names_are_literals_wrapped_within_the_line_length():
    names = [f'column "{i}" with spaces-and-dashes' for i in range(10)]
    text = list_literal(names, 11)
    assert eval(text) == names and max(len(line) for line in text.splitlines()) <= 120  # noqa: S307
    assert list_literal(["a", "b"], 11) == '["a", "b"]'


@pytest.mark.parametrize("width", [3, 8, 20, 37])
def test_a_wrapped_list_fills_its_lines_up_to_the_generators_width_and_not_past_it(width):
    names = [f"c{i:0{width - 1}d}" for i in range(40)]
    lines = list_literal(names, 11).splitlines()[1:-1]
    assert max(len(line) for line in lines) <= LINE
    assert all(len(line) + len(names[0]) + 4 > LINE for line in lines[:-1])  # the next name would not have fitted


def test_render_refuses_an_unknown_placeholder():
    assert render("x = {{a}}  # ${{ azure }}", {"a": "1"}) == "x = 1  # ${{ azure }}"
    with pytest.raises(KeyError, match="nope"):
        render("{{nope}}", {})


def test_each_task_gets_its_own_variant_of_a_template():
    regression, classification = template_files("regression"), template_files("classification")
    assert set(regression) == set(classification)
    assert {"training/train.py", "scoring/score.py", "pipeline.yml", "tests/conftest.py"} <= set(regression)
    assert regression["training/train.py"] != classification["training/train.py"]
    assert regression["pipeline.yml"] == classification["pipeline.yml"]


def test_the_smoke_payload_takes_a_row_with_a_null_first(csv):
    frame = read_table(csv)
    records = smoke_records(frame, profile_frame(frame, "label"))
    assert len(records) == 2 and records[0]["monthly income"] is None and "label" not in records[0]
    json.dumps(records)


def test_the_smoke_payload_is_the_first_row_with_a_null_then_the_first_rows_without_one(csv):
    frame = read_table(csv)  # nulls in rows 1, 2 and 5; "monthly income" differs on every row
    records = smoke_records(frame, profile_frame(frame, "label"))
    assert [r["monthly income"] for r in records] == [None, frame.at[0, "monthly income"]]
    full = frame.dropna().reset_index(drop=True)
    records = smoke_records(full, profile_frame(full, "label"), count=3)
    assert [r["monthly income"] for r in records] == list(full["monthly income"][:3])


def test_a_failed_transaction_removes_what_it_created_and_restores_what_it_changed(tmp_path):
    (tmp_path / "config.yml").write_text("old")
    with pytest.raises(RuntimeError):
        with FileTransaction(tmp_path) as files:
            files.write("new/deep/file.txt", "x")
            files.replace("config.yml", "new")
            raise RuntimeError("midway")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yml"]
    assert (tmp_path / "config.yml").read_text() == "old"


# Both sides of every threshold `mlops init` decides by, and properties over their domains.

def frame_with_target(values) -> pd.DataFrame:
    return pd.DataFrame({"x": np.arange(len(values)) % 7 + 0.5, "y": values})


@hypothesis_settings(deadline=None, max_examples=40)
@given(classes=st.integers(2, MAX_CLASSES + 6), as_float=st.booleans())
def test_whole_number_targets_are_classes_up_to_the_limit_and_a_regression_above_it(classes, as_float):
    values = [float(v) if as_float else v for v in np.repeat(np.arange(classes), MIN_PER_CLASS)]
    profile = profile_frame(frame_with_target(values), "y")
    assert profile.task == ("classification" if classes <= MAX_CLASSES else "regression")
    assert len(profile.classes) == (classes if classes <= MAX_CLASSES else 0)


@pytest.mark.parametrize("classes", [2, 3, MAX_CLASSES])
def test_a_few_distinct_numbers_that_are_not_whole_make_a_regression(classes):
    values = list(np.repeat(np.arange(classes) + 0.5, MIN_PER_CLASS))
    assert profile_frame(frame_with_target(values), "y").task == "regression"


@pytest.mark.parametrize("rows, refused", [(MIN_PER_CLASS, False), (MIN_PER_CLASS - 1, True)])
def test_each_class_needs_at_least_the_minimum_of_rows(rows, refused):
    values = ["a"] * 30 + ["b"] * rows
    if refused:
        with pytest.raises(InitError, match=f"fewer than {MIN_PER_CLASS} rows: 'b' \\({rows}\\)"):
            profile_frame(frame_with_target(values), "y")
    else:
        assert profile_frame(frame_with_target(values), "y").classes == ("a", "b")


@pytest.mark.parametrize("count, pinned", [(MAX_CATEGORIES, True), (MAX_CATEGORIES + 1, False)])
def test_text_columns_are_pinned_to_their_values_up_to_the_limit(count, pinned):
    texts = [f"v{i:03d}" for i in range(count)]
    frame = pd.DataFrame({"city": texts * 2, "y": np.arange(2 * count, dtype=float)})
    profile = profile_frame(frame, "y")
    assert profile.column("city").categories == (tuple(texts) if pinned else ())
    suite = build_suite(profile, "d", "data/d.csv")
    sets = [e for e in suite["expectations"] if e["type"] == "expect_column_values_to_be_in_set"]
    assert [e["kwargs"]["value_set"] for e in sets] == ([texts] if pinned else [])
    assert ("not_pinned" in suite["meta"]) is not pinned


def test_booleans_with_gaps_stay_booleans_and_are_not_required(tmp_path):
    path = tmp_path / "flags.csv"
    pd.DataFrame({"flag": [True, False, None] * 10, "y": np.arange(30.0)}).to_csv(path, index=False)
    profile = profile_frame(read_table(path), "y")
    flag = profile.column("flag")
    assert (flag.kind, flag.nulls, flag.categories, flag.categorical) == ("boolean", 10, (False, True), True)
    expectations = build_suite(profile, "d", "d.csv")["expectations"]
    kinds = {e["type"] for e in expectations if e["kwargs"].get("column") == "flag"}
    assert kinds == {"expect_column_values_to_be_in_set"}


def test_whole_numbers_with_gaps_are_whole_numbers(tmp_path):
    path = tmp_path / "counts.csv"
    pd.DataFrame({"count": [1, None, 7] * 10, "y": np.arange(30.0)}).to_csv(path, index=False)
    count = profile_frame(read_table(path), "y").column("count")
    assert (count.kind, count.integer, count.nulls) == ("numeric", True, 10)
    assert numeric_bounds(count) == (1, 7) and all(isinstance(b, int) for b in numeric_bounds(count))


def test_a_column_is_required_exactly_when_the_sample_has_no_gaps():
    frame = pd.DataFrame({"full": np.arange(30.0) % 7, "gappy": [1.0, None] * 15, "y": ["a", "b"] * 15})
    required = {e["kwargs"]["column"] for e in build_suite(profile_frame(frame, "y"), "d", "d.csv")["expectations"]
                if e["type"] == "expect_column_values_to_not_be_null"}
    assert required == {"full", "y"}


@pytest.mark.parametrize("values, bounds", [([0, 10], (0, 11)), ([0.0, 0.5], (0.0, 0.55)), ([-1, 10], (-3, 12))])
def test_a_column_starting_at_zero_never_allows_negatives_and_a_negative_one_may(values, bounds):
    assert numeric_bounds(profile_column("x", pd.Series(values))) == pytest.approx(bounds)


@hypothesis_settings(deadline=None, max_examples=150)
@given(values=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=20), whole=st.booleans())
def test_the_allowed_range_holds_every_observed_value_and_no_negatives_for_non_negative_data(values, whole):
    if whole:
        values = [float(round(v)) for v in values]
    column = profile_column("x", pd.Series(values))
    low, high = numeric_bounds(column)
    assert low <= min(values) and max(values) <= high and low < high
    if min(values) >= 0:
        assert low >= 0
    if whole:
        assert isinstance(low, int) and isinstance(high, int)


@pytest.mark.parametrize("rows, refused", [(MIN_ROWS, False), (MIN_ROWS - 1, True)])
def test_a_table_needs_the_minimum_of_rows(tmp_path, rows, refused):
    path = tmp_path / "t.csv"
    path.write_bytes(b"a,b\n" + b"1,2\n" * rows)
    if refused:
        with pytest.raises(InitError, match=f"has {rows} data rows; at least {MIN_ROWS}"):
            read_table(path)
    else:
        assert len(read_table(path)) == rows


def test_a_nul_byte_anywhere_in_the_sample_marks_a_binary_file(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"a,b\n" + b"1,2\n" * MIN_ROWS + b"3,\0\n")
    with pytest.raises(InitError, match="binary"):
        read_table(path)


@pytest.mark.parametrize("length, refused", [(MAX_LENGTH, False), (MAX_LENGTH + 1, True)])
def test_a_project_name_may_be_as_long_as_the_limit(length, refused):
    if refused:
        with pytest.raises(InitError, match=f"at most {MAX_LENGTH}"):
            project_names("x" * length)
    else:
        assert project_names("x" * length).project == "x" * length


@pytest.mark.parametrize("names", [("churn\n",), ("churn", "model\n"), ("churn", None, "data\n")])
def test_a_name_with_a_line_break_at_its_end_is_refused(names):
    """`$` in a pattern matches before a final line break: 'churn\\n' would become a folder and a package."""
    with pytest.raises(InitError):
        project_names(*names)


def test_a_name_that_would_shadow_an_installed_module_is_refused_and_a_plain_folder_does_not_count(tmp_path):
    (tmp_path / "mlops.yml").write_text("models: []\n")
    with pytest.raises(InitError, match="would shadow the installed module"):
        check_free(tmp_path, project_names("yaml"), {}, tmp_path / "d.csv")
    check_free(tmp_path, project_names("fresh_t29"), {}, tmp_path / "d.csv")


def test_a_file_with_two_models_keys_is_refused_rather_than_half_changed():
    """PyYAML keeps the last of two equal keys: an entry added under the first would be lost, silently."""
    text = "models:\n  - project: a\n    name: a_model\nci: {}\nmodels:\n  - project: b\n    name: b_model\n"
    with pytest.raises(InitError, match="add this entry by hand"):
        add_model(text, ENTRY)


@hypothesis_settings(deadline=None, max_examples=100)
@given(value=st.text(min_size=1, max_size=20).filter(lambda v: "\0" not in v))
@example("spend \U0001f4b0")  # a column named with an emoji: JSON would write a surrogate pair
@example("caf\xe9 \u2028 \x85 \\ud83d")  # line separators YAML would fold, a backslash that looks like an escape
def test_any_value_is_written_as_a_yaml_scalar_that_reads_back_as_itself(value):
    assert yaml.safe_load(yaml_scalar(value)) == value
    entry = {**ENTRY, "target": value}
    assert yaml.safe_load(add_model(CONFIG, entry))["models"][-1] == entry


def test_a_utf8_file_with_a_byte_order_mark_reads_with_clean_column_names(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes("\ufeffa,b\n".encode() + b"1,2\n" * MIN_ROWS)
    assert list(read_table(path).columns) == ["a", "b"]


@pytest.mark.parametrize("cut, refused", [(False, True), (True, False)])
def test_text_that_is_not_utf8_is_refused_but_a_character_cut_by_the_sample_is_not(tmp_path, cut, refused):
    """The first SNIFF_BYTES are checked: a bad byte inside them is not UTF-8; a multi-byte character that the
    sample's end splits is."""
    from ml_service.init.reader import SNIFF_BYTES

    row = b"1,2\n"
    body = row * ((SNIFF_BYTES - 10) // len(row))
    padding = b"3," + b"x" * (SNIFF_BYTES - 4 - len(body) - 3) + b"\n"  # the header (4 bytes) + rows up to the edge
    data = b"a,b\n" + body + padding
    if cut:
        data = data[:SNIFF_BYTES - 1] + "\u00e9".encode() + b"\n" + row * 3  # \xc3 is the sample's last byte
    else:
        data = b"a,b\n" + b"1,\xff\n" + row * MIN_ROWS
    path = tmp_path / "t.csv"
    path.write_bytes(data)
    if refused:
        with pytest.raises(InitError, match="is not UTF-8 text"):
            read_table(path)
    else:
        assert len(read_table(path)) > MIN_ROWS


@pytest.mark.parametrize("rows, floor", [(MIN_ROWS, 20), (40, 20), (42, 21), (100, 50)])
def test_the_contract_asks_for_half_the_rows_seen_and_never_fewer_than_twenty(rows, floor):
    frame = pd.DataFrame({"x": np.arange(float(rows)) % 7 + 0.5, "y": np.arange(rows) + 0.5})
    suite = build_suite(profile_frame(frame, "y"), "d", "d.csv")
    counts = [e["kwargs"] for e in suite["expectations"] if e["type"] == "expect_table_row_count_to_be_between"]
    assert counts == [{"min_value": floor, "max_value": None}]


def test_a_folder_without_init_on_the_path_does_not_shadow_and_a_package_there_does(tmp_path, monkeypatch):
    """names.py check_free on both sides of its namespace rule: a plain folder of that name on sys.path (a namespace
    package, no origin) is no module to shadow; a package with __init__.py there is refused."""
    import importlib

    site = tmp_path / "site"
    (site / "plain_folder_t29").mkdir(parents=True)
    (site / "real_package_t29").mkdir()
    (site / "real_package_t29" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    repo = tmp_path / "repo"
    repo.mkdir()
    check_free(repo, project_names("plain_folder_t29"), {}, repo / "d.csv")
    with pytest.raises(InitError, match="would shadow the installed module"):
        check_free(repo, project_names("real_package_t29"), {}, repo / "d.csv")
