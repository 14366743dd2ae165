"""The input schema read from MLmodel files that MLflow itself wrote, the row checks, and the frames built for
run(): MLflow's own schema enforcement accepts them. Then (folded from test_mutation_schema.py) the validation
exactly: which row and column are refused and the message naming them, the bounds of each type's range, the
width rules, records turned into rows, the frame's dtypes, and what the signature, flavors and input example
become, from small MLmodel mappings built here."""
import json
import math
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml_service.serving import schema
from ml_service.serving.schema import Column, InputError, Schema, SchemaError

pytestmark = [pytest.mark.filterwarnings("ignore:.*Inferred schema contains integer column"),  # MLflow's advice
              pytest.mark.filterwarnings("ignore:.*An input example was not provided")]


@pytest.fixture(scope="module")
def mlflow_models(tmp_path_factory):
    """Two models saved by MLflow: one on a table (column signature), one on an array (tensor signature)."""
    import mlflow.pyfunc
    import numpy as np
    import pandas as pd
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types import ColSpec
    from mlflow.types import Schema as MlflowSchema

    class Echo(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return [str(dict(model_input.dtypes))] * len(model_input)

    base = tmp_path_factory.mktemp("mlflow")
    table = pd.DataFrame({"size": [1.5, None, 3.0], "n": [1, 2, 3], "name": ["a", None, "c"],
                          "flag": [True, False, True]})
    mlflow.pyfunc.save_model(str(base / "table"), python_model=Echo(), input_example=table.head(2),
                             signature=infer_signature(table, np.array([1.0, 2.0, 3.0])), pip_requirements=[])
    array = np.zeros((2, 3))
    mlflow.pyfunc.save_model(str(base / "array"), python_model=Echo(), input_example=array,
                             signature=infer_signature(array), pip_requirements=[])
    narrow = ModelSignature(MlflowSchema([ColSpec("float", "f"), ColSpec("integer", "i"),
                                          ColSpec("datetime", "when", required=False),
                                          ColSpec("boolean", "ok", required=False)]))
    mlflow.pyfunc.save_model(str(base / "narrow"), python_model=Echo(), signature=narrow, pip_requirements=[])
    return base


def test_column_signature_as_mlflow_writes_it(mlflow_models):
    mlmodel = schema.read_mlmodel(mlflow_models / "table")
    table = schema.load_schema(mlmodel)
    assert table.columns == (Column("size", "double", False), Column("n", "long", True),
                             Column("name", "string", False), Column("flag", "boolean", True))
    assert table.typed and not table.numeric and table.width == 4
    assert schema.platform(mlmodel) == "python_function"
    assert schema.output_datatype(mlmodel) == "FP64"
    # MLflow writes the example in split form with NaN for missing values: they become null
    example = schema.input_example(mlflow_models / "table", mlmodel, table)
    assert example == [[1.5, 1, "a", True], [None, 2, None, False]]


def test_tensor_signature_is_untyped_rows_of_its_width(mlflow_models):
    mlmodel = schema.read_mlmodel(mlflow_models / "array")
    array = schema.load_schema(mlmodel)
    assert not array.typed and array.numeric and array.width == 3
    assert schema.input_example(mlflow_models / "array", mlmodel, array) == [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]


def test_no_mlmodel_is_untyped_rows_of_any_width(tmp_path):
    assert schema.read_mlmodel(tmp_path) == {} and schema.read_mlmodel("") == {}
    assert schema.load_schema({}) == Schema() and schema.platform({}) == "unknown"
    assert schema.input_example(tmp_path, {}, Schema()) is None
    assert schema.resolve_model_dir(str(tmp_path)) == str(tmp_path)


@pytest.mark.parametrize("inputs, message", [
    (json.dumps([{"type": "array", "name": "tags", "items": {"type": "string"}}]), "column 'tags' has type 'array'"),
    ("[{\"type\": \"double\"}]", "signature.inputs[0] has no column name"),
    ("[{\"type\": ", "signature.inputs is not JSON"),
    ("{\"type\": \"double\"}", "must be a list"),
])
def test_signatures_the_service_cannot_use_are_refused_at_start(inputs, message):
    with pytest.raises(SchemaError, match=message.replace("[", r"\[").replace("(", r"\(")):
        schema.load_schema({"signature": {"inputs": inputs}})


def test_a_broken_mlmodel_file_is_refused(tmp_path):
    (tmp_path / "MLmodel").write_text("flavors: [unclosed")
    with pytest.raises(SchemaError, match="MLmodel: cannot read it"):
        schema.read_mlmodel(tmp_path)


def test_platform_prefers_the_native_flavor_and_output_types():
    assert schema.platform({"flavors": {"python_function": {}, "sklearn": {}}}) == "sklearn"
    labels = {"signature": {"outputs": json.dumps([{"type": "tensor", "tensor-spec": {"dtype": "object"}}])}}
    assert schema.output_datatype(labels) == "BYTES"
    assert schema.output_datatype({"signature": {"outputs": '[{"type": "boolean"}]'}}) == "BOOL"
    assert schema.output_datatype({"signature": {"outputs": '[{"type": "long", "name": "y"}]'}}) == "FP64"


@pytest.mark.parametrize("column, value, problem", [
    (Column("x"), None, "is null but required"),
    (Column("x", required=False), None, None),
    (Column("x"), True, "is not a number: True"),
    (Column("x"), "1", "is not a number: '1'"),
    (Column("x"), math.inf, "is not finite: inf"),
    (Column("x"), 3, None),
    (Column("x", "long"), 3.0, None),
    (Column("x", "long"), 3.5, "is not a whole number: 3.5"),
    (Column("x", "integer"), 2 ** 31, "is out of range for integer: 2147483648"),
    (Column("x", "float"), 1e39, "is out of range for float: 1e+39"),
    (Column("x", "float"), -3e38, None),
    pytest.param(Column("x"), 10 ** 400, "is out of range for double: 1" + "0" * 56 + "...", id="huge-int"),
    (Column("x", "boolean"), 0, "is not true or false: 0"),
    (Column("x", "string"), 0, "is not a string: 0"),
    (Column("x", "string"), "y" * 100, None),
    (Column("x", "datetime"), "2024-02-30", "is not an ISO 8601 date/time: '2024-02-30'"),
    (Column("x", "datetime"), "2024-02-03T04:05:06", None),
])
def test_column_checks(column, value, problem):
    assert column.check(value) == problem


def test_long_values_are_shortened_in_messages():
    assert Column("x").check("y" * 100) == "is not a number: '" + "y" * 56 + "..."


def test_check_turns_records_into_rows_in_place_and_names_row_and_column():
    table = Schema((Column("a"), Column("b", "string", False)))
    data = [{"b": "x", "a": 1.0}, {"a": 2}, [3.0, None]]
    assert table.check(data) is data and data == [[1.0, "x"], [2, None], [3.0, None]]
    with pytest.raises(InputError, match=r"data\[1\] column 'b' is not a string: 2"):
        table.check([[1.0, "x"], [1.0, 2]])
    with pytest.raises(InputError, match="'data' must be a list of rows, got dict"):
        table.check({"a": 1})


def test_the_fast_numeric_check_finds_what_the_full_check_finds():
    numbers = Schema((Column("a", "long"), Column("b", "float"), Column("c")))
    assert numbers.check([[1, 1.5, 2], [2.0, -3e38, 1e300]]) == [[1, 1.5, 2], [2.0, -3e38, 1e300]]
    for row, problem in (([1.5, 1.0, 1.0], "column 'a' is not a whole number"),
                         ([2 ** 63, 1.0, 1.0], "column 'a' is out of range for long"),
                         ([1, 1e39, 1.0], "column 'b' is out of range for float"),
                         ([1, 1.0, 10 ** 400], "column 'c' is out of range for double"),
                         ([1, 1.0, math.nan], "column 'c' is not finite")):
        with pytest.raises(InputError, match=problem):
            numbers.check([[1, 1.0, 1.0], row])


def test_untyped_rows_take_their_width_from_the_first_row():
    assert Schema().check([[1, 2], [3, 4.5]]) == [[1, 2], [3, 4.5]]
    with pytest.raises(InputError, match=r"data\[1\] has 1 values; data\[0\] has 2"):
        Schema().check([[1, 2], [3]])
    with pytest.raises(InputError, match=r"data\[0\] has 1 values; the model expects 3"):
        Schema(width=3).check([[1]])


def test_frames_have_the_schema_dtypes():
    table = Schema((Column("d"), Column("f", "float"), Column("l", "long"), Column("i", "integer"),
                    Column("nl", "long", False), Column("b", "boolean"), Column("nb", "boolean", False),
                    Column("s", "string", False), Column("t", "datetime", False)))
    rows = table.check([[1, 1.5, 2.0, 3, None, True, None, None, "2024-01-02T03:04:05"],
                        [2.5, 2, 4, 5, 6, False, True, "x", None]])
    frame = table.frame(rows)
    assert list(frame.columns) == ["d", "f", "l", "i", "nl", "b", "nb", "s", "t"]
    assert {c: str(t) for c, t in frame.dtypes.items()} == {
        "d": "float64", "f": "float32", "l": "int64", "i": "int32", "nl": "float64", "b": "bool", "nb": "object",
        "s": "object", "t": "datetime64[us]"}
    assert frame["s"].tolist() == [None, "x"] and math.isnan(frame["nl"][0])
    assert Schema().frame([[1, 2.5]]).dtypes.tolist() == ["float64", "float64"]


def test_mlflow_schema_enforcement_accepts_the_frames(mlflow_models):
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(str(mlflow_models / "narrow"))
    narrow = schema.load_schema(schema.read_mlmodel(mlflow_models / "narrow"))
    rows = narrow.check([{"f": 1.5, "i": 2, "when": "2024-01-02T03:04:05", "ok": True}, {"f": 2, "i": 3}])
    assert len(model.predict(narrow.frame(rows))) == 2
    table = schema.load_schema(schema.read_mlmodel(mlflow_models / "table"))
    model = mlflow.pyfunc.load_model(str(mlflow_models / "table"))
    assert len(model.predict(table.frame(table.check([[None, 1, None, True], [2.0, 2, "b", False]])))) == 2


@pytest.mark.parametrize("written, rows", [
    ({"dataframe_split": {"columns": ["b", "a"], "data": [["x", 1.0]]}}, [[1.0, "x"]]),
    ([{"a": 2.0, "b": "y"}], [[2.0, "y"]]),
    ({"dataframe_records": [{"a": 3.0}]}, [[3.0, None]]),
    ({"columns": ["a"], "data": [[None]]}, [[0.0, ""]]),  # does not fit (a is required): built from the schema
    ("not an example", [[0.0, ""]]),
])
def test_input_example_forms(tmp_path, written, rows):
    (tmp_path / "input_example.json").write_text(json.dumps(written))
    table = Schema((Column("a"), Column("b", "string", False)))
    assert schema.input_example(tmp_path, {}, table) == rows


# --- exactly: messages, bounds, widths, records, dtypes (folded from test_mutation_schema.py) ------------------
# Serving input validation, exactly: which row and column are refused and the message naming them, the
# boundaries of each type's range, the width rules, the records turned into rows, the dtypes of the frame,
# and what the signature, flavors and input example become. Small MLmodel mappings built here.

TYPES = ("double", "float", "long", "integer", "boolean", "string", "datetime", "binary")


def refused(s, data, where="data"):
    with pytest.raises(InputError) as caught:
        s.check(data, where)
    return str(caught.value)


def test_shown_and_names_shorten_at_their_limits():
    assert schema._shown("x" * 58) == repr("x" * 58)  # 60 characters: whole
    assert schema._shown("x" * 59) == repr("x" * 59)[:57] + "..."
    assert len(schema._shown("x" * 59)) == 60
    names = [f"c{i}" for i in range(21)]
    assert schema._names(names[:20]) == ", ".join(names[:20])
    assert schema._names(names) == ", ".join(names[:20]) + ", ... (21 in all)"
    assert schema._names(names, limit=2) == "c0, c1, ... (21 in all)"


@pytest.mark.parametrize("kind, json_type", [
    ("double", "number"), ("float", "number"), ("long", "integer"), ("integer", "integer"),
    ("boolean", "boolean"), ("string", "string"), ("datetime", "string"), ("binary", "string")])
def test_json_types(kind, json_type):
    assert Column("c", kind).json_type == json_type


@pytest.mark.parametrize("kind, value, problem", [
    ("double", None, "is null but required"),
    ("double", "1", "is not a number: '1'"),
    ("double", True, "is not a number: True"),
    ("double", float("inf"), "is not finite: inf"),
    ("double", float("-inf"), "is not finite: -inf"),
    ("double", float("nan"), "is not finite: nan"),
    ("double", 10 ** 400, f"is out of range for double: {schema._shown(10 ** 400)}"),
    ("double", 10 ** 300, None),
    ("double", sys.float_info.max, None),
    ("double", 3.5e38, None),
    ("float", 3.5e38, "is out of range for float: 3.5e+38"),
    ("float", -3.5e38, "is out of range for float: -3.5e+38"),
    ("float", schema.FLOAT32_MAX, None),
    ("float", -schema.FLOAT32_MAX, None),
    ("float", 2, None),
    ("long", 2 ** 63 - 1, None),
    ("long", -2 ** 63, None),
    ("long", 2 ** 63, f"is out of range for long: {2 ** 63}"),
    ("long", -2 ** 63 - 1, f"is out of range for long: {-2 ** 63 - 1}"),
    ("long", 2.0, None),
    ("long", 2.5, "is not a whole number: 2.5"),
    ("integer", 2 ** 31 - 1, None),
    ("integer", -2 ** 31, None),
    ("integer", 2 ** 31, f"is out of range for integer: {2 ** 31}"),
    ("integer", -2 ** 31 - 1, f"is out of range for integer: {-2 ** 31 - 1}"),
    ("integer", float(2 ** 31), f"is out of range for integer: {float(2 ** 31)}"),
    ("integer", "3", "is not a number: '3'"),
    ("boolean", True, None),
    ("boolean", False, None),
    ("boolean", 1, "is not true or false: 1"),
    ("boolean", "true", "is not true or false: 'true'"),
    ("string", "x", None),
    ("string", 1, "is not a string: 1"),
    ("binary", "eA==", None),
    ("binary", 1.5, "is not a string: 1.5"),
    ("datetime", "2024-05-06T07:08:09", None),
    ("datetime", "2024-05-06", None),
    ("datetime", "yesterday", "is not an ISO 8601 date/time: 'yesterday'"),
    ("datetime", 20240506, "is not a string: 20240506"),
])
def test_column_check(kind, value, problem):
    assert Column("c", kind).check(value) == problem


@pytest.mark.parametrize("kind", TYPES)
def test_null_is_refused_only_when_required(kind):
    assert Column("c", kind).check(None) == "is null but required"
    assert Column("c", kind, required=False).check(None) is None
    assert Column("c").type == "double" and Column("c").required is True


def test_a_typed_schema_knows_its_columns():
    s = Schema((Column("a"), Column("b", "long"), Column("c", "float")))
    assert s.width == 3 and s.typed and s.numeric and s.names == ["a", "b", "c"]
    assert s.column(1) == Column("b", "long") and s.label(1) == "'b'"
    assert s._index == {"a": 0, "b": 1, "c": 2}
    assert s._ranged == ((1, -2 ** 63, 2 ** 63 - 1, True), (2, -schema.FLOAT32_MAX, schema.FLOAT32_MAX, False))
    mixed = Schema((Column("a"), Column("s", "string")))
    assert not mixed.numeric and mixed.typed
    untyped = Schema()
    assert untyped.width is None and not untyped.typed and untyped.numeric and untyped.names == []
    assert untyped.column(4) == Column("4") and untyped.label(4) == "4"
    assert Schema(width=3).width == 3 and not Schema(width=3).typed


def test_data_that_is_not_a_non_empty_list_is_refused_naming_where():
    s = Schema((Column("a"),))
    assert refused(s, {"a": 1}) == "'data' must be a list of rows, got dict"
    assert refused(s, [], "inputs") == "'inputs' is empty: send at least one row"
    assert refused(s, [[1.0], "x"]) == "data[1] must be a list of values or an object of columns, got str"
    assert refused(Schema(), [[1.0], 5], "rows") == "rows[1] must be a list of numbers, got int"
    assert refused(s, [[1.0], []]) == "data[1] has no values"
    assert refused(s, [[1.0], (1.0,)]) == "data[1] must be a list of values or an object of columns, got tuple"


def test_the_width_rules_name_the_row_and_the_expected_width():
    typed = Schema((Column("a"), Column("b")))
    assert refused(typed, [[1.0, 2.0], [1.0]]) == "data[1] has 1 values; the model expects 2 (a, b)"
    assert refused(typed, [[1.0, 2.0, 3.0]]) == "data[0] has 3 values; the model expects 2 (a, b)"
    assert refused(Schema(width=2), [[1.0]]) == "data[0] has 1 values; the model expects 2"
    assert refused(Schema(), [[1.0, 2.0], [1.0, 2.0], [1.0, 2.0, 3.0]], "x") == "x[2] has 3 values; x[0] has 2"
    rows = [[1.0, 2.0, 3.0], [4, 5, 6]]
    assert Schema().check(rows) is rows and rows == [[1.0, 2.0, 3.0], [4, 5, 6]]


def test_untyped_rows_are_checked_as_required_doubles_naming_the_column_by_position():
    assert refused(Schema(), [[1.0, "x"]]) == "data[0] column 1 is not a number: 'x'"
    assert refused(Schema(), [[1.0, 2.0], [None, 2.0]]) == "data[1] column 0 is null but required"
    assert refused(Schema(), [[1.0, float("nan")]]) == "data[0] column 1 is not finite: nan"


@pytest.mark.parametrize("kind, good, bad, problem", [
    ("long", 2 ** 63 - 1, 2 ** 63, f"is out of range for long: {2 ** 63}"),
    ("long", -2 ** 63, -2 ** 63 - 1, f"is out of range for long: {-2 ** 63 - 1}"),
    ("integer", 7.0, 7.5, "is not a whole number: 7.5"),
    ("integer", -2 ** 31, -2 ** 31 - 1, f"is out of range for integer: {-2 ** 31 - 1}"),
    ("float", schema.FLOAT32_MAX, 3.5e38, "is out of range for float: 3.5e+38"),
    ("float", 1.5, -3.5e38, "is out of range for float: -3.5e+38"),
    ("double", 1.5, float("inf"), "is not finite: inf"),
    ("double", 1.5, True, "is not a number: True"),
])
def test_the_fast_numeric_pass_refuses_what_the_full_check_refuses(kind, good, bad, problem):
    s = Schema((Column("a"), Column("b", kind)))
    assert s.check([[1.0, good], [2, good]]) == [[1.0, good], [2, good]]
    assert refused(s, [[1.0, good], [2.0, bad]]) == f"data[1] column 'b' {problem}"


def test_a_sum_that_overflows_still_refuses_only_what_is_wrong():
    s = Schema((Column("a"), Column("b")))
    assert s.check([[1e308, 1e308]]) == [[1e308, 1e308]]  # the sum is inf, each value fits
    huge = schema._shown(10 ** 400)
    assert refused(s, [[10 ** 400, 0.5]]) == f"data[0] column 'a' is out of range for double: {huge}"
    assert refused(Schema((Column("a", "float"), Column("b"))), [[10 ** 300, 0.5]]) == \
        f"data[0] column 'a' is out of range for float: {schema._shown(10 ** 300)}"


def test_records_become_rows_in_schema_order_in_place():
    s = Schema((Column("a"), Column("b", "string", required=False), Column("c", "long")))
    data = [{"c": 3, "a": 1.5}, [2.0, "x", 4], {"b": "y", "a": 0.0, "c": 1}]
    assert s.check(data) is data
    assert data == [[1.5, None, 3], [2.0, "x", 4], [0.0, "y", 1]]
    assert refused(s, [{"a": 1.0, "c": 1.5}]) == "data[0] column 'c' is not a whole number: 1.5"
    assert refused(s, [[1.0, None, 1], {"a": 1.0, "c": 1, "z": 2, "w": 3}]) == \
        "data[1] has unknown column(s) 'z', 'w'; the model takes a, b, c"
    assert refused(s, [{"b": "x"}]) == "data[0] is missing column(s) 'a', 'c'"
    assert refused(s, [{}]) == "data[0] is missing column(s) 'a', 'c'"
    assert refused(Schema(), [{"a": 1.0}], "rows") == (
        "rows[0] is an object, but this model has no column names (no signature): send each row as a list of numbers")


def test_typed_non_numeric_rows_are_checked_value_by_value():
    s = Schema((Column("when", "datetime"), Column("ok", "boolean"), Column("name", "string")))
    assert s.check([["2024-01-01", True, "n"]]) == [["2024-01-01", True, "n"]]
    assert refused(s, [["2024-01-01", True, "n"], ["2024-01-01", "yes", "n"]]) == \
        "data[1] column 'ok' is not true or false: 'yes'"


def test_frames_have_the_schema_columns_in_order_with_their_dtypes():
    s = Schema(tuple(Column(k, k, required=False) for k in TYPES))
    rows = [[1.5, 2.5, 3, 4, True, "s", "2024-01-02T03:04:05", "Yg=="]]
    frame = s.frame(rows)
    assert list(frame.columns) == list(TYPES)
    assert {c: str(t)[:10] for c, t in frame.dtypes.items()} == {
        "double": "float64", "float": "float32", "long": "int64", "integer": "int32", "boolean": "bool",
        "string": "object", "datetime": "datetime64", "binary": "object"}
    assert frame.iloc[0].tolist()[:5] == [1.5, 2.5, 3, 4, True]
    with_nulls = s.frame([[None, None, None, None, None, None, None, None], rows[0]])
    assert {c: str(t)[:10] for c, t in with_nulls.dtypes.items()} == {
        "double": "float64", "float": "float32", "long": "float64", "integer": "float64", "boolean": "object",
        "string": "object", "datetime": "datetime64", "binary": "object"}
    assert math.isnan(with_nulls["long"][0]) and with_nulls["long"][1] == 3 and with_nulls["boolean"][0] is None
    mixed = Schema((Column("t", "datetime"),)).frame([["2024-01-02"], ["2024-01-02T03:04:05"]])
    assert [str(t) for t in mixed["t"]] == ["2024-01-02 00:00:00", "2024-01-02 03:04:05"]
    untyped = Schema().frame([[1, 2], [3, 4]])
    assert str(untyped.dtypes.iloc[0]) == "float64" and untyped.values.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    with pytest.raises(InputError) as bad:
        Schema((Column("n", "long"),)).frame([["x"]])
    assert str(bad.value).startswith("the rows do not make a table of the model's columns: ")


def test_read_mlmodel(tmp_path):
    assert schema.read_mlmodel(tmp_path) == {}
    assert schema.read_mlmodel("") == {}
    (tmp_path / "MLmodel").write_text("flavors: {sklearn: {}}\n")
    assert schema.read_mlmodel(tmp_path) == {"flavors": {"sklearn": {}}}
    assert schema.read_mlmodel(str(tmp_path)) == {"flavors": {"sklearn": {}}}
    (tmp_path / "MLmodel").write_text("- a list\n")
    with pytest.raises(SchemaError) as not_mapping:
        schema.read_mlmodel(tmp_path)
    assert str(not_mapping.value) == f"{tmp_path / 'MLmodel'}: expected a YAML mapping"
    (tmp_path / "MLmodel").write_text("a: [unclosed\n")
    with pytest.raises(SchemaError) as broken:
        schema.read_mlmodel(tmp_path)
    assert str(broken.value).startswith(f"{tmp_path / 'MLmodel'}: cannot read it: ")


def signature(inputs=None, outputs=None, as_text=True):
    sig = {}
    for part, specs in (("inputs", inputs), ("outputs", outputs)):
        if specs is not None:
            sig[part] = json.dumps(specs) if as_text else specs
    return {"signature": sig}


def test_load_schema_from_column_and_tensor_signatures():
    specs = [{"name": "a", "type": "double"}, {"name": "b", "type": "long", "required": False},
             {"name": "c", "type": "string", "required": True}]
    expected = Schema((Column("a"), Column("b", "long", False), Column("c", "string", True)))
    assert schema.load_schema(signature(specs)) == expected
    assert schema.load_schema(signature(specs, as_text=False)) == expected
    assert schema.load_schema({}) == Schema() and schema.load_schema({"signature": None}) == Schema()
    assert schema.load_schema(signature([])) == Schema()
    tensor = [{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 4]}}]
    assert schema.load_schema(signature(tensor)) == Schema(width=4)
    tensor[0]["tensor-spec"]["shape"] = [-1, 1]
    assert schema.load_schema(signature(tensor)) == Schema(width=1)
    for shape in ([-1, -1], [-1], [-1, 2, 3], [-1, "4"], [-1, 0], None):
        tensor[0]["tensor-spec"]["shape"] = shape
        assert schema.load_schema(signature(tensor)).width is None, shape
    tensor[0]["tensor-spec"]["shape"] = [-1, 4]
    assert schema.load_schema(signature(tensor + tensor)).width is None
    assert schema.load_schema(signature([{"type": "tensor"}])).width is None


@pytest.mark.parametrize("specs, message", [
    ([{"type": "double"}], "MLmodel signature.inputs[0] has no column name"),
    ([{"name": "a", "type": "double"}, {"name": "", "type": "double"}],
     "MLmodel signature.inputs[1] has no column name"),
    ([{"name": 3, "type": "double"}], "MLmodel signature.inputs[0] has no column name"),
    ([{"name": "a", "type": "map"}], "MLmodel signature: column 'a' has type 'map'; the scoring service takes "
                                     "double, float, long, integer, boolean, string, datetime, binary"),
    ([{"name": "a"}], "MLmodel signature: column 'a' has type None; the scoring service takes "
                      "double, float, long, integer, boolean, string, datetime, binary"),
    (["a"], "MLmodel signature.inputs must be a list of column or tensor specs"),
    ({"name": "a"}, "MLmodel signature.inputs must be a list of column or tensor specs"),
])
def test_signatures_the_service_cannot_use(specs, message):
    with pytest.raises(SchemaError) as caught:
        schema.load_schema(signature(specs))
    assert str(caught.value) == message


def test_a_signature_that_is_not_json():
    with pytest.raises(SchemaError) as caught:
        schema.output_datatype({"signature": {"outputs": "[not json"}})
    assert str(caught.value).startswith("MLmodel signature.outputs is not JSON: ")


@pytest.mark.parametrize("outputs, datatype", [
    (None, "FP64"),
    ([], "FP64"),
    ([{"type": "string"}, {"type": "string"}], "FP64"),
    ([{"type": "double"}], "FP64"),
    ([{"type": "long"}], "FP64"),
    ([{"type": "string"}], "BYTES"),
    ([{"type": "binary"}], "BYTES"),
    ([{"type": "boolean"}], "BOOL"),
    ([{"type": "tensor", "tensor-spec": {"dtype": "str"}}], "BYTES"),
    ([{"type": "tensor", "tensor-spec": {"dtype": "object"}}], "BYTES"),
    ([{"type": "tensor", "tensor-spec": {"dtype": "bool"}}], "BOOL"),
    ([{"type": "tensor", "tensor-spec": {"dtype": "float64"}}], "FP64"),
    ([{"type": "tensor"}], "FP64"),
])
def test_output_datatype(outputs, datatype):
    assert schema.output_datatype(signature(outputs=outputs)) == datatype


def test_platform():
    assert schema.platform({"flavors": {"python_function": {}, "sklearn": {}, "xgboost": {}}}) == "sklearn"
    assert schema.platform({"flavors": {"python_function": {}}}) == "python_function"
    assert schema.platform({"flavors": {1: {}, "python_function": {}}}) == "python_function"
    assert schema.platform({"flavors": None}) == "unknown" and schema.platform({}) == "unknown"


TYPED = Schema((Column("a"), Column("b", "long", required=False)))


@pytest.mark.parametrize("raw, rows", [
    ({"dataframe_split": {"columns": ["b", "a"], "data": [[1, 2.5], [3, 4.5]]}}, [[2.5, 1], [4.5, 3]]),
    ({"columns": ["b", "a"], "data": [[1, 2.5]]}, [[2.5, 1]]),
    ({"dataframe_records": [{"a": 1.5}, {"a": 2.5, "b": 2}]}, [[1.5, None], [2.5, 2]]),
    ({"inputs": [[1.5, 1]]}, [[1.5, 1]]),
    ([{"a": 1.5, "b": 1}], [[1.5, 1]]),
    ([[float("nan"), 1]] * 7, [[None, 1]] * 5),
    ([], None),
    ({}, None),
    ("text", None),
    ([[1.5, 1], "row"], None),
])
def test_example_rows_of_each_saved_form(raw, rows):
    assert schema._example_rows(raw, TYPED) == rows


def test_example_rows_of_an_untyped_model():
    assert schema._example_rows({"columns": ["x", "y"], "data": [[1, 2]]}, Schema()) == [[1, 2]]
    assert schema._example_rows([{"x": 1}], Schema()) is None


def test_input_example_uses_the_saved_example_when_it_fits_else_defaults(tmp_path):
    every = Schema(tuple(Column(k, k) for k in TYPES))
    defaults = [[0.0, 0.0, 0, 0, False, "", "2024-01-01T00:00:00", ""]]
    assert schema.input_example(tmp_path, {}, every) == defaults
    assert every.check([list(r) for r in defaults])  # the defaults fit the schema
    assert schema.input_example(tmp_path, {}, Schema(width=2)) == [[0.0, 0.0]]
    assert schema.input_example(tmp_path, {}, Schema()) is None
    assert schema.input_example("", {}, TYPED) == [[0.0, 0]]
    (tmp_path / "input_example.json").write_text(json.dumps({"columns": ["a", "b"], "data": [[7.5, 7]]}))
    assert schema.input_example(tmp_path, {}, TYPED) == [[7.5, 7]]
    assert schema.input_example("", {}, TYPED) == [[0.0, 0]]
    (tmp_path / "input_example.json").write_text(json.dumps({"columns": ["a", "b"], "data": [["x", 7]]}))
    assert schema.input_example(tmp_path, {}, TYPED) == [[0.0, 0]]  # does not fit: defaults
    (tmp_path / "input_example.json").write_text("{broken")
    assert schema.input_example(tmp_path, {}, TYPED) == [[0.0, 0]]
    (tmp_path / "other.json").write_text(json.dumps([[1.5, 2]]))
    info = {"saved_input_example_info": {"artifact_path": "other.json"}}
    assert schema.input_example(tmp_path, info, TYPED) == [[1.5, 2]]
    assert schema.input_example(tmp_path, {"saved_input_example_info": None}, TYPED) == [[0.0, 0]]


def test_a_local_model_dir_is_used_as_is():
    assert schema.resolve_model_dir("/models/m") == "/models/m"
    assert schema.resolve_model_dir("model") == "model"


BOUNDARY_NUMBERS = st.one_of(
    st.integers(-2 ** 64, 2 ** 64), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([2 ** 63 - 1, -2 ** 63, 2 ** 63, -2 ** 63 - 1, 2 ** 31 - 1, -2 ** 31, 2 ** 31, -2 ** 31 - 1,
                     schema.FLOAT32_MAX, -schema.FLOAT32_MAX, 3.5e38, 10 ** 400, 1.5, -0.0, True, float(2 ** 31)]))
RANGED = Schema((Column("l", "long"), Column("f", "float"), Column("d"), Column("i", "integer")))


@settings(max_examples=400, deadline=None)
@given(rows=st.lists(st.lists(BOUNDARY_NUMBERS, min_size=4, max_size=4), min_size=1, max_size=3))
def test_the_fast_pass_refuses_exactly_what_the_column_checks_refuse(rows):
    """Schema.check's one-pass check of all-numeric rows gives the verdict, and the message, of checking every
    value with its column's Column.check."""
    expected = None
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            problem = RANGED.column(j).check(value)
            if problem and expected is None:
                expected = f"data[{i}] column {RANGED.label(j)} {problem}"
    if expected is None:
        assert RANGED.check([list(r) for r in rows]) == rows
    else:
        assert refused(RANGED, [list(r) for r in rows]) == expected
