"""The data contract (data/contract.py) names exactly what failed: which expectation, which column (or the
table), and why (the missing column, the unexpected values, the observed value, the evaluation error);
unreadable suites and files are refused with the path and the reason. A small suite and frame built here, no
sample model."""
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from ml_service.data import contract
from ml_service.data.contract import Check, DataContractError, ValidationResult, load_suite_dict, read_csv

SUITE = {
    "name": "tiny",
    "expectations": [
        {"type": "expect_table_columns_to_match_ordered_list", "kwargs": {"column_list": ["a", "b"]}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "b", "min_value": 0, "max_value": 10}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "gone"}},
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1, "max_value": 100}},
    ],
}


@pytest.fixture(scope="module")
def outcome():
    import pandas as pd

    frame = pd.DataFrame({"a": [1.0, None, 3.0], "b": [5, 11, 12]})
    return contract.validate_frame(frame, SUITE, Path("in.csv"))


def test_each_check_names_its_expectation_column_outcome_and_reason(outcome):
    assert outcome.suite_name == "tiny" and outcome.rows == 3 and outcome.data_path == Path("in.csv")
    got = {(c.expectation, c.column): (c.success, c.detail) for c in outcome.checks}
    assert len(outcome.checks) == 5
    assert got[("expect_table_columns_to_match_ordered_list", "")] == (True, "observed ['a', 'b']")
    success, detail = got[("expect_column_values_to_not_be_null", "a")]
    assert success is False and detail.startswith("1 unexpected value(s), e.g. ")
    assert got[("expect_column_values_to_be_between", "b")] == (False, "2 unexpected value(s), e.g. 11, 12")
    assert got[("expect_column_values_to_not_be_null", "gone")] == (False, "column 'gone' is missing")
    assert got[("expect_table_row_count_to_be_between", "")] == (True, "observed 3")
    assert not outcome.success
    assert sorted(c.column for c in outcome.failures) == ["a", "b", "gone"]


def test_a_suite_without_a_name_is_called_suite_and_a_bad_expectation_is_refused_naming_the_suite():
    import pandas as pd

    frame = pd.DataFrame({"a": [1]})
    unnamed = contract.validate_frame(frame, {"expectations": [SUITE["expectations"][1]]}, Path("x.csv"))
    assert unnamed.suite_name == "suite" and unnamed.success and unnamed.rows == 1
    with pytest.raises(DataContractError) as refused:
        contract.validate_frame(frame, {"name": "bad", "expectations": [{"type": "expect_no_such_thing"}]},
                                Path("x.csv"))
    assert str(refused.value).startswith("invalid expectation in suite 'bad': ")


def result(*checks):
    return ValidationResult(data_path=Path("d.csv"), suite_name="s", rows=2, checks=list(checks))


def test_success_needs_every_check_and_failures_keep_suite_order():
    ok, bad1, bad2 = Check("e1", "a", True, "x"), Check("e2", "", False, "y"), Check("e3", "c", False, "z")
    assert result(ok, ok).success and result().success
    assert not result(ok, bad1).success and not result(bad1, ok).success
    assert result(bad2, ok, bad1).failures == [bad2, bad1]
    assert result(ok).failures == []


def test_summary_passed_and_failed_lines():
    ok, bad1, bad2 = Check("e1", "a", True, "x"), Check("e2", "", False, "y"), Check("e3", "c", False, "z")
    assert result(ok, ok).summary() == "d.csv: all 2 expectations of 's' passed"
    assert result(ok, bad1, bad2).summary() == (
        "d.csv: 2 of 3 expectations failed:\n  - e2 [table]: y\n  - e3 [c]: z")


def test_the_suite_file_is_read_or_refused_with_path_and_reason(tmp_path):
    path = tmp_path / "suite.json"
    path.write_text(json.dumps({"expectations": []}))
    assert load_suite_dict(path) == {"expectations": []}
    assert load_suite_dict(str(path)) == {"expectations": []}
    with pytest.raises(DataContractError) as missing:
        load_suite_dict(tmp_path / "nope.json")
    assert str(missing.value) == f"{tmp_path / 'nope.json'}: expectation suite not found"
    path.write_text('{\n"expectations": [,]}')
    with pytest.raises(DataContractError) as malformed:
        load_suite_dict(path)
    assert str(malformed.value).startswith(f"{path}: malformed JSON at line 2: ")
    for text in ("[]", "{}", '{"expectations": {}}'):
        path.write_text(text)
        with pytest.raises(DataContractError) as wrong:
            load_suite_dict(path)
        assert str(wrong.value) == f"{path}: not an expectation suite (no 'expectations' list)"


def test_a_csv_is_read_or_refused_with_path_and_reason(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text("a,b\n1,2\n3,4\n")
    assert read_csv(good).to_dict("list") == {"a": [1, 3], "b": [2, 4]}
    with pytest.raises(DataContractError) as missing:
        read_csv(tmp_path / "nope.csv")
    assert str(missing.value) == f"{tmp_path / 'nope.csv'}: data file not found"
    for name, data in (("empty.csv", b""), ("binary.csv", b"a,b\n\xff\xfe,\x80\n"), ("ragged.csv", b"a\n1\n1,2,3\n")):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DataContractError) as unreadable:
            read_csv(tmp_path / name)
        assert str(unreadable.value).startswith(f"{tmp_path / name}: not a readable CSV file: ")


def test_validate_file_reads_the_suite_then_the_data(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(contract, "validate_frame", lambda frame, suite, path: seen.update(
        frame=frame.to_dict("list"), suite=suite, path=path) or "result")
    (tmp_path / "s.json").write_text(json.dumps(SUITE))
    (tmp_path / "d.csv").write_text("a\n7\n")
    assert contract.validate_file(str(tmp_path / "d.csv"), tmp_path / "s.json") == "result"
    assert seen == {"frame": {"a": [7]}, "suite": SUITE, "path": tmp_path / "d.csv"}
    assert isinstance(seen["path"], Path)


def item(column=None, success=False, exception_info=None, result=None):
    kwargs = {} if column is None else {"column": column}
    return SimpleNamespace(expectation_config=SimpleNamespace(kwargs=kwargs), success=success,
                           exception_info=exception_info, result=result)


def test_detail_prefers_missing_column_then_error_then_unexpected_then_observed():
    detail = contract._detail
    assert detail(item("x", result={"observed_value": 1}), {"a"}) == "column 'x' is missing"
    assert detail(item("a", result={"observed_value": 1}), {"a"}) == "observed 1"
    assert detail(item(None, result={"observed_value": "v"}), {"a"}) == "observed 'v'"
    assert detail(item("a", exception_info={"raised_exception": True, "exception_message": "boom"},
                       result={"observed_value": 1}), {"a"}) == "could not be evaluated: boom"
    many = {"unexpected_count": 7, "partial_unexpected_list": [1, "b", 3, 4, 5, 6], "observed_value": 2}
    assert detail(item("a", result=many), {"a"}) == "7 unexpected value(s), e.g. 1, 'b', 3, 4, 5"
    assert detail(item("a", result={"unexpected_count": 2, "partial_unexpected_list": None}), {"a"}) == \
        "2 unexpected value(s), e.g. "
    assert detail(item("a", result={"unexpected_count": 0, "observed_value": 0}), {"a"}) == "observed 0"
    assert detail(item("a", result={"observed_value": None}), {"a"}) == "failed"
    assert detail(item("a", success=True), {"a"}) == "passed"
    assert detail(item("a", success=False, result=None, exception_info=None), {"a"}) == "failed"


def test_the_first_exception_message_is_found_at_any_depth():
    message = contract._exception_message
    assert message({}) == ""
    assert message({"raised_exception": False, "exception_message": None}) == ""
    assert message({"raised_exception": True}) == "error"
    assert message({"raised_exception": True, "exception_message": "  \n"}) == "error"
    assert message({"exception_message": "Traceback\n  line\nValueError: bad  "}) == "ValueError: bad"
    assert message({"raised_exception": False, "exception_message": "only message"}) == "only message"
    nested = {"m1": {"raised_exception": False}, "skip": "text",
              "m2": {"deeper": {"raised_exception": True, "exception_message": "first"}},
              "m3": {"raised_exception": True, "exception_message": "second"}}
    assert message(nested) == "first"
    assert message({"m": {"raised_exception": False}, "n": 3}) == ""
