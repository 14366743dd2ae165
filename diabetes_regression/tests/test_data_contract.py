"""The data contract passes the good file and catches every deliberately bad fixture."""
import os
import subprocess
import sys

import pytest

from ml_service.data.contract import DataContractError, validate_file
from diabetes_regression.tests.conftest import DATA, FIXTURES, ROOT, SUITE


@pytest.fixture(scope="module")
def good():
    return validate_file(DATA, SUITE)


def test_good_file_passes_every_expectation(good):
    assert good.success, good.summary()
    assert good.rows == 442 and len(good.checks) >= 30


@pytest.mark.parametrize("fixture, expectation, column", [
    ("missing_column", "expect_table_columns_to_match_ordered_list", ""),
    ("missing_column", "expect_column_values_to_not_be_null", "BMI"),
    ("missing_values", "expect_column_values_to_not_be_null", "BP"),
    ("out_of_range", "expect_column_values_to_be_between", "AGE"),
    ("out_of_range", "expect_column_values_to_be_between", "BMI"),
    ("wrong_type", "expect_column_values_to_be_in_type_list", "S1"),
])
def test_each_bad_fixture_fails_the_right_expectation(fixture, expectation, column):
    result = validate_file(FIXTURES / f"{fixture}.csv", SUITE)
    assert not result.success
    assert (expectation, column) in {(f.expectation, f.column) for f in result.failures}
    assert expectation in result.summary() and (column or "table") in result.summary()


def test_missing_values_fixture_fails_only_where_values_are_missing():
    failures = validate_file(FIXTURES / "missing_values.csv", SUITE).failures
    assert [(f.expectation, f.column) for f in failures] == [("expect_column_values_to_not_be_null", "BP")]


def test_unreadable_files_get_a_clear_error(tmp_path):
    with pytest.raises(DataContractError, match="not found"):
        validate_file(tmp_path / "nope.csv", SUITE)
    (tmp_path / "suite.json").write_text("{not json")
    with pytest.raises(DataContractError, match="malformed JSON"):
        validate_file(DATA, tmp_path / "suite.json")


def mlops(tmp_path, *args):
    env = {**os.environ, "MLOPS_ROOT": str(ROOT), "MLOPS_STATE_DIR": str(tmp_path / "ws"),
           "MLOPS_MODEL": "diabetes_regression"}
    return subprocess.run([sys.executable, "-m", "ml_service.cli", *args], capture_output=True, text=True, env=env)


def test_cli_uses_this_projects_contract_exits_non_zero_naming_failures_and_writes_a_report(tmp_path):
    result = mlops(tmp_path, "data", "validate", str(FIXTURES / "out_of_range.csv"))
    assert result.returncode == 1
    assert "expect_column_values_to_be_between [AGE]" in result.stdout
    report = tmp_path / "ws" / "reports" / "data_validation.html"
    assert "FAIL" in report.read_text() and "AGE" in report.read_text()


def test_cli_passes_this_projects_own_data_by_default(tmp_path):
    result = mlops(tmp_path, "data", "validate")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passed" in result.stdout and str(DATA) in result.stdout


def test_committed_data_matches_the_generator(tmp_path):
    from diabetes_regression.data import write_all

    for path in write_all(tmp_path):
        committed = DATA.parent / path.relative_to(tmp_path)
        assert path.read_bytes() == committed.read_bytes(), f"{committed} is stale: run `make data`"
