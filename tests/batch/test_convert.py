"""Batch scoring: rows of a chunk checked against the model's input schema, column by column."""
from __future__ import annotations

import math

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml_service.batch import convert
from ml_service.serving.schema import FLOAT32_MAX, Column, Schema

SCHEMA = Schema((Column("x", "double"), Column("n", "long"), Column("opt", "double", required=False),
                 Column("grade", "string", required=False), Column("flag", "boolean"), Column("f", "float")))


def table(**columns) -> pa.Table:
    return pa.table({name: pa.array(values, pa.string()) for name, values in columns.items()})


def test_good_rows_become_a_typed_frame_and_bad_rows_are_set_aside_with_the_services_reason():
    chunk = table(x=["1.5", "abc", "2", "3", None, "inf", "4"],
                  n=["3", "4", "4.5", "5", "6", "7", "99999999999999999999"],
                  opt=["1", None, "2", "3", "4", "5", "6"], grade=["a", "b", None, "c", "d", "e", "f"],
                  flag=["true", "False", "1", "maybe", "0", "true", "true"], f=["1", "2", "3", "4", "5", "6", "7"])
    checked = convert.check(chunk, SCHEMA)
    assert checked.scored == 1 and checked.keep.tolist() == [True] + [False] * 6
    assert checked.rejects == {
        1: "column 'x' is not a number: 'abc'",
        2: "column 'n' is not a whole number: 4.5",
        3: "column 'flag' is not true or false: 'maybe'",
        4: "column 'x' is null but required",
        5: "column 'x' is not finite: inf",
        6: "column 'n' is out of range for long: 1e+20",
    }
    frame = convert.frame(checked, SCHEMA)
    assert list(frame.columns) == ["x", "n", "opt", "grade", "flag", "f"]
    assert [str(t) for t in frame.dtypes] == ["float64", "int64", "float64", "object", "bool", "float32"]
    assert frame.iloc[0].tolist() == [1.5, 3, 1.0, "a", True, 1.0]


def test_optional_nulls_are_kept_as_missing_values_and_rows_get_none():
    chunk = table(x=["1", "2"], n=["1", "2"], opt=[None, "2.5"], grade=[None, "b"], flag=["true", "false"],
                  f=["1", "2"])
    checked = convert.check(chunk, SCHEMA)
    assert checked.scored == 2 and not checked.rejects
    frame = convert.frame(checked, SCHEMA)
    assert math.isnan(frame["opt"][0]) and frame["grade"][0] is None
    rows = convert.rows(frame)
    assert rows[0] == [1.0, 1, None, None, True, 1.0] and rows[1][2] == 2.5


def test_typed_parquet_columns_are_taken_as_they_are():
    chunk = pa.table({"a": pa.array([1.0, None, 3.0]), "b": pa.array([1, 2, 3], pa.int64())})
    schema = Schema((Column("a", "double"), Column("b", "long")))
    checked = convert.check(chunk, schema)
    assert checked.rejects == {1: "column 'a' is null but required"}
    assert convert.rows(convert.frame(checked, schema)) == [[1.0, 1.0], [3.0, 3.0]]


def test_a_missing_optional_column_is_null_and_an_untyped_model_takes_every_column_as_numbers():
    schema = Schema((Column("x", "double"), Column("opt", "double", required=False)))
    checked = convert.check(table(x=["1"]), schema)
    assert checked.scored == 1 and math.isnan(convert.frame(checked, schema)["opt"][0])
    untyped = convert.check(table(a=["1", "2"], b=["x", "3"]), Schema())
    assert untyped.rejects == {0: "column 'b' is not a number: 'x'"}
    assert convert.rows(convert.frame(untyped, Schema())) == [[2.0, 3.0]]


def test_rejected_values_are_kept_as_read():
    chunk = table(x=["abc"], n=[None])
    assert convert.reject_values(chunk, 0) == '{"x": "abc", "n": null}'


@pytest.mark.parametrize("kind, value, problem", [
    ("float", repr(FLOAT32_MAX), None), ("float", repr(-FLOAT32_MAX), None),
    ("float", "3.5e38", "is out of range for float: 3.5e+38"),
    ("float", "-3.5e38", "is out of range for float: -3.5e+38"),
    ("long", str(-2 ** 63), None), ("long", "9223372036854774784", None),
    ("long", str(2 ** 63 - 1), "is out of range for long: 9.223372036854776e+18"),
    ("long", str(2 ** 63), "is out of range for long: 9.223372036854776e+18"),
    ("integer", str(2 ** 31 - 1), None), ("integer", str(-2 ** 31), None),
    ("integer", str(2 ** 31), "is out of range for integer: 2147483648.0"),
    ("integer", str(-2 ** 31 - 1), "is out of range for integer: -2147483649.0"),
    ("double", "1.7976931348623157e308", None), ("double", "1e309", "is not finite: inf"),
])
def test_each_numeric_range_holds_its_bounds_and_refuses_beyond(kind, value, problem):
    schema = Schema((Column("v", kind),))
    checked = convert.check(table(v=[value]), schema)
    assert checked.rejects == ({} if problem is None else {0: f"column 'v' {problem}"})
    if problem is None:  # and the value reaches the model as it was written
        frame = convert.frame(checked, schema)
        assert frame["v"].tolist() == [float(value) if kind in ("double", "float") else int(value)]


@pytest.mark.parametrize("text, value", [("true", True), ("TRUE", True), ("1", True), ("false", False),
                                         ("False", False), ("0", False)])
def test_csv_booleans_are_true_false_1_or_0_in_any_case(text, value):
    schema = Schema((Column("b", "boolean"),))
    checked = convert.check(table(b=[text]), schema)
    assert checked.rejects == {} and convert.frame(checked, schema)["b"].tolist() == [value]


@pytest.mark.parametrize("text", ["yes", "2", "t", "", "truth"])
def test_other_booleans_are_rejected_naming_the_value(text):
    checked = convert.check(table(b=[text]), Schema((Column("b", "boolean"),)))
    assert checked.rejects == {0: f"column 'b' is not true or false: {text!r}"}


NUMBER_TEXT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-2 ** 53, 2 ** 53).map(str),
    st.sampled_from([repr(FLOAT32_MAX), "3.4028235e38", "3.5e38", str(2 ** 31), str(2 ** 31 - 1), str(-2 ** 31 - 1),
                     str(2 ** 63), str(2 ** 63 - 1), str(-2 ** 63), "1e309", "-1e309", "2.5", "-0.0", "1e-320"]))


@settings(max_examples=300, deadline=None)
@given(text=NUMBER_TEXT, kind=st.sampled_from(["double", "float", "long", "integer"]), required=st.booleans())
def test_batch_refuses_a_number_exactly_when_the_scoring_service_refuses_it(text, kind, required):
    """The same rules in both places: a CSV value is rejected by batch scoring when the scoring service refuses
    that number in a request (schema.Column.check), with the same reason (the text "nan" is refused as text)."""
    column = Column("v", kind, required)
    checked = convert.check(table(v=[text]), Schema((column,)))
    problem = column.check(float(text))
    if text == "nan":
        assert checked.rejects == {0: "column 'v' is not a number: 'nan'"}
    else:
        assert checked.rejects == ({} if problem is None else {0: f"column 'v' {problem}"}), text
