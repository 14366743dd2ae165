"""`mlops init`'s pieces on their own: reading and profiling a CSV, the contract it writes, the mlops.yml
entry, names, templates and the all-or-nothing writer."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from ml_service.init import InitError
from ml_service.init.config_entry import add_model, yaml_scalar
from ml_service.init.names import ProjectNames, project_names
from ml_service.init.profile import guess_task, profile_column, profile_frame
from ml_service.init.reader import MIN_ROWS, read_table
from ml_service.init.scaffold import list_literal, render, smoke_records, template_files
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
    ("Churn", "not a valid Python package"), ("my-model", "not a valid"), ("1st", "not a valid"),
    ("class", "not a valid"), ("json", "standard library"), ("x" * 41, "at most 40"),
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


def test_a_failed_transaction_removes_what_it_created_and_restores_what_it_changed(tmp_path):
    (tmp_path / "config.yml").write_text("old")
    with pytest.raises(RuntimeError):
        with FileTransaction(tmp_path) as files:
            files.write("new/deep/file.txt", "x")
            files.replace("config.yml", "new")
            raise RuntimeError("midway")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yml"]
    assert (tmp_path / "config.yml").read_text() == "old"
