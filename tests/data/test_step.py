"""The data-validation pipeline step (data/step.py) and `mlops data validate` (cli/data.py): a file that
breaks its contract stops the pipeline / exits 1, naming the failed expectations; a good one passes with its
row count. A small suite written here, real Great Expectations."""
from __future__ import annotations

import json
import time

import pytest

from ml_service.cli import main
from ml_service.data.contract import DataContractError
from ml_service.data.step import validate

SUITE = {"name": "tiny", "expectations": [
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "b", "min_value": 0, "max_value": 10}}]}


@pytest.fixture
def files(tmp_path):
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps(SUITE))
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_text("a,b\n1,2\n3,10\n")
    bad.write_text("a,b\n1,2\n3,11\n")
    return suite, good, bad


def test_the_step_passes_a_good_file_with_its_rows_and_keeps_the_report(tmp_path, files):
    suite, good, _ = files
    out = tmp_path / "out"
    out.mkdir()
    before = time.strftime("%Y%m%d-%H%M%S")
    result = validate({"data": good, "suite": suite}, {}, out, {"reports_dir": str(tmp_path / "reports")})
    after = time.strftime("%Y%m%d-%H%M%S")
    assert result == {"metrics": {"rows": 2, "expectations_passed": 1}}
    assert "Data validation passed" in (out / "data_validation.html").read_text()
    kept = list((tmp_path / "reports").glob("data_validation_good_*.html"))  # stamped: one report per validation
    assert len(kept) == 1 and before <= kept[0].stem.rsplit("_", 1)[1] <= after, kept


def test_the_step_fails_on_a_file_that_breaks_the_contract_naming_the_expectation(tmp_path, files):
    suite, _, bad = files
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DataContractError) as failed:
        validate({"data": bad, "suite": suite}, {}, out, {"reports_dir": str(tmp_path / "reports")})
    assert "expect_column_values_to_be_between [b]: 1 unexpected value(s), e.g. 11" in str(failed.value)
    assert "FAILED (1 of 1)" in (out / "data_validation.html").read_text()


def test_mlops_data_validate_exits_1_on_a_broken_file_and_0_on_a_good_one(workspace, files):
    suite, good, bad = files
    assert main(["data", "validate", str(bad), "--suite", str(suite)]) == 1
    assert main(["data", "validate", str(good), "--suite", str(suite)]) == 0
    assert (workspace.reports_dir / "data_validation.html").is_file()
    assert main(["data", "validate", str(good), "--suite", str(suite.with_name("absent.json"))]) == 2
