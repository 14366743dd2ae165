"""The input schema read from MLmodel files that MLflow itself wrote, the row checks, and the frames built for
run(): MLflow's own schema enforcement accepts them."""
import json
import math

import pytest

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
