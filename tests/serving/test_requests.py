"""Request handling of the scoring app through the ASGI protocol, for models built here: a regression on rows
(its signature names ten numeric columns), a classifier on a frame with a text column and missing values, an
untyped model, and MLflow pyfunc models. One test per bad-input class."""
import pickle
import sys
import types

import pytest

from ml_service.serving.app import ScoringApp
from ml_service.serving.config import ServingConfigError, ServingSettings, load_serving_settings
from tests.support.asgi import call
from tests.support.frame_score import save_classifier
from tests.support.rows_score import COLUMNS, save_regressor

ROW = [59, 2.0, 32.1, 101.0, 157.0, 93.2, 38.0, 4.0, 4.8598, 87.0]
JSON = {"Content-Type": "application/json"}
SICK = {"radius": 22.0, "texture": 19.5, "grade": "high", "count": 4, "smooth": False}
WELL = {"radius": 9.0, "texture": None, "grade": None, "count": 1, "smooth": True}


def serve(model_dir, score_module="ml_service.serving.pyfunc_score", **settings) -> ScoringApp:
    return ScoringApp(ServingSettings(model_dir=str(model_dir), score_module=score_module, log_requests=False,
                                      **settings))


@pytest.fixture(scope="module")
def regressor(tmp_path_factory):
    return save_regressor(tmp_path_factory.mktemp("regressor"))


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
    return save_classifier(tmp_path_factory.mktemp("classifier"))


@pytest.fixture(scope="module")
def app(regressor):
    return serve(regressor, "tests.support.rows_score", model_name="regression", model_version="3",
                 max_body_bytes=2000)


@pytest.fixture(scope="module")
def classifier(classifier_dir):
    return serve(classifier_dir, "tests.support.frame_score", model_name="classifier", model_version="2")


@pytest.fixture(scope="module")
def untyped(tmp_path_factory):
    return serve(save_regressor(tmp_path_factory.mktemp("untyped"), signature=False), "tests.support.rows_score",
                 model_name="untyped")


def score(app, data, headers=JSON):
    return call(app, "POST", "/score", {"data": data}, headers)


# --- /score: rows and records -------------------------------------------------------------------------------

def test_score_returns_one_prediction_per_row(app):
    status, headers, body = score(app, [ROW, ROW[::-1]])
    assert status == 200 and len(body["result"]) == 2 and set(body) == {"result"}
    assert headers["x-request-id"]


def test_rows_path_matches_the_model(app, regressor):
    import pandas as pd

    model = pickle.loads((regressor / "model.pkl").read_bytes())
    _, _, body = score(app, [ROW])
    assert body["result"][0] == pytest.approx(float(model.predict(pd.DataFrame([ROW], columns=COLUMNS))[0]),
                                              rel=1e-12)


def test_records_score_like_rows_in_any_key_order(app):
    record = dict(reversed(list(zip(COLUMNS, ROW))))
    assert score(app, [record, ROW])[2]["result"] == score(app, [ROW, ROW])[2]["result"]


@pytest.mark.parametrize("name, body, headers, status, message", [
    ("invalid JSON", b'{"data": [', JSON, 400, "invalid JSON"),
    ("empty body", b"", JSON, 400, "empty request body"),
    ("deeply nested JSON", b"[" * 1500, JSON, 400, "nested too deeply"),
    ("not an object", [1, 2], JSON, 422, "expected a JSON object"),
    ("no data key", {"rows": [ROW]}, JSON, 422, "expected a JSON object"),
    ("wrong feature count", {"data": [[1, 2, 3]]}, JSON, 422, "data[0] has 3 values; the model expects 10 (f0, f1"),
    ("rows not lists", {"data": [1, 2]}, JSON, 422, "data[0] must be a list of values or an object of columns"),
    ("strings", {"data": [ROW[:9] + ["x"]]}, JSON, 422, "data[0] column 'f9' is not a number: 'x'"),
    ("booleans", {"data": [ROW, ROW[:9] + [True]]}, JSON, 422, "data[1] column 'f9' is not a number: True"),
    ("fraction for a long", {"data": [[1.5] + ROW[1:]]}, JSON, 422, "column 'f0' is not a whole number: 1.5"),
    ("long out of range", {"data": [[2 ** 70] + ROW[1:]]}, JSON, 422, "column 'f0' is out of range for long"),
    ("huge number", {"data": [ROW[:9] + [10 ** 400]]}, JSON, 422, "column 'f9' is out of range"),
    ("null where required", {"data": [ROW[:3] + [None] + ROW[4:]]}, JSON, 422, "column 'f3' is null but required"),
    ("NaN", b'{"data": [[1,2,3,4,5,6,7,8,9,NaN]]}', JSON, 422, "data[0] column 'f9' is not finite"),
    ("infinity", b'{"data": [[1,2,3,4,5,6,7,8,9,Infinity]]}', JSON, 422, "is not finite"),
    ("empty batch", {"data": []}, JSON, 422, "is empty"),
    ("empty row", {"data": [[]]}, JSON, 422, "data[0] has no values"),
    ("unknown columns", {"data": [{**dict(zip(COLUMNS, ROW)), "age": 3, "bmi": 1}]}, JSON, 422,
     "data[0] has unknown column(s) 'age', 'bmi'"),
    ("missing column", {"data": [dict(zip(COLUMNS[1:], ROW[1:]))]}, JSON, 422, "data[0] is missing column(s) 'f0'"),
    ("too large", {"data": [ROW] * 100}, JSON, 413, "over the limit"),
    ("wrong content type", {"data": [ROW]}, {"Content-Type": "text/plain"}, 415, "must be application/json"),
    ("no content type", {"data": [ROW]}, {}, 415, "must be application/json"),
    ("compressed", {"data": [ROW]}, {**JSON, "Content-Encoding": "gzip"}, 415, "content encoding gzip"),
])
def test_bad_input_gets_a_4xx_json_error_naming_the_problem(app, name, body, headers, status, message):
    got, response_headers, payload = call(app, "POST", "/score", body, headers)
    assert got == status, payload
    assert message in payload["error"] and payload["request_id"] == response_headers["x-request-id"]


def test_body_over_the_limit_without_content_length_is_413(app):
    status, _, payload = call(app, "POST", "/score", {"data": [ROW] * 100}, JSON, chunk=500)
    assert status == 413


def test_wrong_method_and_unknown_path(app):
    status, headers, _ = call(app, "GET", "/score")
    assert status == 405 and headers["allow"] == "POST"
    assert call(app, "GET", "/nope")[0] == 404


def test_an_exception_in_run_is_a_500_with_request_id_and_no_traceback(tmp_path, capsys):
    failing = serve(tmp_path, "tests.support.failing_score")
    status, headers, body = call(failing, "POST", "/score", {"data": [ROW]}, {**JSON, "X-Request-Id": "abc123"})
    assert status == 500 and body == {"error": "internal error while scoring", "request_id": "abc123"}
    assert "secret internal detail" not in str(body)
    assert "secret internal detail" in capsys.readouterr().err  # logged on the server side
    assert call(failing, "GET", "/v2/health/live")[0] == 200  # and the app still serves


def test_predictions_become_plain_json_and_bad_ones_are_4xx_or_500s(tmp_path):
    failing = serve(tmp_path, "tests.support.failing_score")
    status, _, body = score(failing, [[1, 0], [1, 0]])  # finite inputs, a non-finite prediction: the input's range
    assert status == 422 and body["error"].startswith("the model's prediction for row 0 is not finite")
    assert score(failing, [[2, 0], [2, 0]])[0] == 500  # one prediction too few
    assert score(failing, [[3, 0], [3, 0]])[2]["result"] == [0.0, 1.0]  # numpy float32
    assert score(failing, [[4, 0]])[2]["result"] == ["yes"]  # pandas Series of labels
    assert score(failing, [[5, 0], [5, 0]])[2]["result"] == [1.0, 1.0]  # one-column DataFrame


def test_a_score_module_with_an_unknown_input_kind_is_refused_at_start(tmp_path, monkeypatch):
    module = types.ModuleType("table_score")
    module.INPUT, module.init, module.run = "table", lambda model_dir: None, lambda data: data
    monkeypatch.setitem(sys.modules, "table_score", module)
    with pytest.raises(ServingConfigError, match="INPUT must be 'frame' or 'rows', got 'table'"):
        serve(tmp_path, "table_score")


# --- a classifier on a frame: text, nulls, probabilities -----------------------------------------------------

def test_classifier_returns_labels_probabilities_and_classes(classifier):
    status, _, body = score(classifier, [SICK, WELL])
    assert status == 200, body
    assert body["result"] == ["malignant", "benign"] and body["classes"] == ["benign", "malignant"]
    assert all(len(p) == 2 and sum(p) == pytest.approx(1.0) for p in body["probabilities"])


def test_optional_columns_take_null_or_may_be_left_out(classifier):
    left_out = {k: v for k, v in WELL.items() if k not in ("texture", "grade")}
    as_row = [WELL[c] for c in ("radius", "texture", "grade", "count", "smooth")]
    results = [score(classifier, [row])[2] for row in (WELL, left_out, as_row)]
    assert results[0] == results[1] == results[2] and results[0]["result"] == ["benign"]


@pytest.mark.parametrize("row, message", [
    ({**WELL, "radius": None}, "data[0] column 'radius' is null but required"),
    ({**WELL, "radius": "big"}, "data[0] column 'radius' is not a number: 'big'"),
    ({**WELL, "grade": 3}, "data[0] column 'grade' is not a string: 3"),
    ({**WELL, "smooth": 1}, "data[0] column 'smooth' is not true or false: 1"),
    ({**WELL, "count": 2.5}, "data[0] column 'count' is not a whole number: 2.5"),
    ({k: v for k, v in WELL.items() if k != "count"}, "data[0] is missing column(s) 'count'"),
    ({**WELL, "colour": "red"}, "data[0] has unknown column(s) 'colour'"),
    ([9.0, None, None, 1], "data[0] has 4 values; the model expects 5"),
])
def test_classifier_bad_rows_name_the_row_and_column(classifier, row, message):
    status, _, body = score(classifier, [row])
    assert status == 422 and message in body["error"], body


def test_v2_per_column_inputs_with_bytes_give_the_score_predictions(classifier):
    rows = [SICK, WELL]
    inputs = [{"name": "radius", "shape": [2], "datatype": "FP64", "data": [22.0, 9.0]},
              {"name": "texture", "shape": [2, 1], "datatype": "FP32", "data": [[19.5], [None]]},
              {"name": "grade", "shape": [2], "datatype": "BYTES", "data": ["high", None]},
              {"name": "count", "shape": [2], "datatype": "INT64", "data": [4, 1]},
              {"name": "smooth", "shape": [2], "datatype": "BOOL", "data": [False, True]}]
    status, _, body = call(classifier, "POST", "/v2/models/classifier/infer", {"id": "r1", "inputs": inputs}, {})
    assert status == 200, body
    expected = score(classifier, rows)[2]
    outputs = {o["name"]: o for o in body["outputs"]}
    assert body["id"] == "r1" and outputs["predict"] == {"name": "predict", "datatype": "BYTES", "shape": [2],
                                                         "data": expected["result"]}
    probabilities = outputs["probabilities"]
    assert probabilities["datatype"] == "FP64" and probabilities["shape"] == [2, 2]
    assert probabilities["data"] == [p for row in expected["probabilities"] for p in row]
    only = {"inputs": inputs, "outputs": [{"name": "predict"}]}
    assert [o["name"] for o in call(classifier, "POST", "/v2/models/classifier/infer", only, JSON)[2]["outputs"]] \
        == ["predict"]


@pytest.mark.parametrize("change, message", [
    ({"grade": {"datatype": "FP64", "data": [1.0]}}, "has datatype 'FP64'; the column is string: send BYTES"),
    ({"radius": {"datatype": "BYTES", "data": ["22"]}}, "has datatype 'BYTES'; the column is double: send FP64"),
    ({"grade": {"data": [7]}}, "row[0] column 'grade' is not a string: 7"),
    ({"count": {"shape": [2], "data": [1, 2]}}, "inputs[3] ('count') has 2 rows; inputs[0] has 1"),
    ({"radius": {"shape": [2], "data": [9.0, 10.0]}}, "inputs[1] ('texture') has 1 rows; inputs[0] has 2"),  # fewer
    ({"count": {"shape": [1, 2], "data": [[1, 2]]}}, "inputs[3].shape must be [rows] or [rows, 1]"),
    ({"count": {"shape": [1], "data": []}}, "inputs[3].data has 0 values; shape [1] needs 1"),
    ({"radius": {"name": "size"}}, "unknown input(s) 'size'; the model's columns are radius, texture"),
    ({"radius": None}, "no input for required column(s) 'radius'"),
    ({"count": {"name": ["count"]}}, "inputs[3].name must be a string, got list"),
    ({"count": {"datatype": {"INT64": 1}}}, "inputs[3].datatype must be a string, got dict"),
])
def test_v2_per_column_bad_inputs_are_422(classifier, change, message):
    inputs = []
    for name, datatype, value in (("radius", "FP64", 9.0), ("texture", "FP64", 20.0), ("grade", "BYTES", "low"),
                                  ("count", "INT64", 1), ("smooth", "BOOL", True)):
        tensor = {"name": name, "shape": [1], "datatype": datatype, "data": [value]}
        if name in change:
            if change[name] is None:
                continue
            tensor.update(change[name])
        inputs.append(tensor)
    status, _, body = call(classifier, "POST", "/v2/models/classifier/infer", {"inputs": inputs}, JSON)
    assert status == 422 and message in body["error"], body


def test_v2_tensor_cannot_carry_text_columns(classifier):
    tensor = {"inputs": [{"name": "x", "shape": [1, 5], "datatype": "FP64", "data": [1, 2, 3, 4, 5]}]}
    status, _, body = call(classifier, "POST", "/v2/models/classifier/infer", tensor, JSON)
    assert status == 422 and "non-numeric columns (grade, smooth)" in body["error"]


def test_classifier_metadata_and_openapi_describe_its_columns(classifier):
    status, _, meta = call(classifier, "GET", "/v2/models/classifier")
    assert status == 200 and meta["platform"] == "sklearn" and meta["versions"] == ["2"]
    assert meta["inputs"] == [{"name": "radius", "datatype": "FP64", "shape": [-1]},
                              {"name": "texture", "datatype": "FP64", "shape": [-1]},
                              {"name": "grade", "datatype": "BYTES", "shape": [-1]},
                              {"name": "count", "datatype": "INT64", "shape": [-1]},
                              {"name": "smooth", "datatype": "BOOL", "shape": [-1]}]
    assert meta["outputs"] == [{"name": "predict", "datatype": "BYTES", "shape": [-1]},
                               {"name": "probabilities", "datatype": "FP64", "shape": [-1, 2]}]
    spec = call(classifier, "GET", "/openapi.json")[2]
    body = spec["paths"]["/score"]["post"]["requestBody"]["content"]["application/json"]
    values, record = body["schema"]["properties"]["data"]["items"]["oneOf"]
    assert values["minItems"] == values["maxItems"] == 5 and values["items"] is False
    assert [v["type"] for v in values["prefixItems"]] == ["number", ["number", "null"], ["string", "null"],
                                                          "integer", "boolean"]
    assert record["required"] == ["radius", "count", "smooth"] and record["additionalProperties"] is False
    assert record["properties"]["grade"] == {"type": ["string", "null"]}
    # the example is MLflow's saved input example (split form, NaN as null), and the server takes it
    assert body["example"] == {"data": [[14.2, 20.1, "low", 3, True], [21.5, None, None, 9, False]]}
    assert score(classifier, body["example"]["data"])[0] == 200
    response = spec["paths"]["/score"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert response["properties"]["result"]["items"] == {"type": "string"} and "probabilities" in response["properties"]
    infer = spec["paths"]["/v2/models/classifier/infer"]["post"]["requestBody"]["content"]["application/json"]
    assert call(classifier, "POST", "/v2/models/classifier/infer", infer["example"], JSON)[0] == 200


# --- the regression's v2, metadata, openapi, metrics, auth ----------------------------------------------------

def test_v2_infer_accepts_flat_and_nested_tensors_and_no_content_type(app):
    flat = {"inputs": [{"name": "input-0", "shape": [2, 10], "datatype": "FP64", "data": ROW + ROW}]}
    nested = {"inputs": [{"name": "input-0", "shape": [2, 10], "datatype": "FP32", "data": [ROW, ROW]}]}
    expected = score(app, [ROW, ROW])[2]["result"]
    for payload in (flat, nested):
        for headers in (JSON, {}):  # the Triton HTTP client sends no content type
            status, _, body = call(app, "POST", "/v2/models/regression/infer", payload, headers)
            assert status == 200 and body["outputs"][0]["shape"] == [2] and body["model_version"] == "3"
            assert body["outputs"][0]["data"] == expected


def test_v2_per_column_on_a_numeric_model(app):
    inputs = [{"name": c, "shape": [1], "datatype": "FP64", "data": [v]} for c, v in zip(COLUMNS, ROW)]
    status, _, body = call(app, "POST", "/v2/models/regression/infer", {"inputs": inputs}, {})
    assert status == 200 and body["outputs"][0]["data"] == score(app, [ROW])[2]["result"]


@pytest.mark.parametrize("payload, headers, status, message", [
    ({"inputs": []}, JSON, 422, "expected"),
    ({"inputs": [{"name": "x", "shape": [1, 10], "datatype": "BYTES", "data": ROW}]}, JSON, 422, "not numeric"),
    ({"inputs": [{"name": "x", "shape": [2, 10], "datatype": "FP64", "data": ROW}]}, JSON, 422, "needs 20"),
    ({"inputs": [{"name": "x", "shape": [1, 10], "datatype": "FP64"}]}, JSON, 422, "missing data"),
    ({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]}, JSON, 422,
     "inputs[0].data[0] has 3 values; the model expects 10"),
    ({"inputs": [{"name": "x", "shape": [1, 10], "datatype": "FP64", "data": ROW}], "outputs": [{"name": "y"}]},
     JSON, 422, "unknown output(s) 'y'; this model returns predict"),
    ({"inputs": [{"name": "x", "shape": [1, 10], "datatype": "FP64", "data": ROW}]}, {"Content-Type": "text/plain"},
     415, "must be application/json"),
    ({"inputs": [{"name": "x", "shape": [1, 10], "datatype": "FP64", "data": ROW}]},
     {"Inference-Header-Content-Length": "9999"}, 400, "does not fit a body"),
])
def test_v2_bad_requests_are_4xx(app, payload, headers, status, message):
    got, _, body = call(app, "POST", "/v2/models/regression/infer", payload, headers)
    assert got == status and message in body["error"], body


def test_v2_metadata_health_and_unknown_model(app):
    status, _, meta = call(app, "GET", "/v2/models/regression")
    assert status == 200 and meta["platform"] == "sklearn" and meta["versions"] == ["3"]
    assert [i["name"] for i in meta["inputs"]] == COLUMNS and meta["inputs"][0]["datatype"] == "INT64"
    assert meta["outputs"] == [{"name": "predict", "datatype": "FP64", "shape": [-1]}]
    assert call(app, "GET", "/v2/models/regression/versions/3")[2] == meta
    assert call(app, "GET", "/v2/health/live")[2] == {"live": True}
    assert call(app, "GET", "/v2/health/ready")[2] == {"ready": True}
    assert call(app, "GET", "/v2/models/other")[0] == 404


def test_metrics_count_requests_errors_and_predictions(app):
    score(app, [ROW, ROW])
    call(app, "POST", "/score", b"{", JSON)
    _, headers, text = call(app, "GET", "/metrics")
    text = text.decode()
    assert headers["content-type"].startswith("text/plain")
    assert 'mlops_predictions_total{model="regression",version="3"}' in text
    assert 'mlops_request_errors_total{model="regression",status="400",version="3"}' in text
    assert "mlops_request_duration_seconds_bucket" in text


def test_openapi_and_docs(app):
    status, _, spec = call(app, "GET", "/openapi.json")
    assert status == 200 and "/score" in spec["paths"] and "/v2/models/regression/infer" in spec["paths"]
    body = spec["paths"]["/score"]["post"]["requestBody"]["content"]["application/json"]
    assert body["example"] == {"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]]}
    values, record = body["schema"]["properties"]["data"]["items"]["oneOf"]
    assert values["prefixItems"][0] == {"type": "integer", "minimum": -2 ** 63, "maximum": 2 ** 63 - 1}
    assert sorted(record["properties"]) == sorted(COLUMNS) and "f0 (long)" in spec["info"]["description"]
    status, headers, page = call(app, "GET", "/docs")
    assert status == 200 and headers["content-type"].startswith("text/html") and b"/openapi.json" in page
    assert b"1,2,3" not in page.replace(b" ", b"")  # the example comes from the model, not the page


def test_the_default_score_module_names_no_project():
    assert ServingSettings(model_dir="").score_module == "ml_service.serving.pyfunc_score"
    assert load_serving_settings({"MLOPS_SCORE_MODULE": ""}).score_module == "ml_service.serving.pyfunc_score"
    assert load_serving_settings({"MLOPS_SCORE_MODULE": "a.b"}).score_module == "a.b"


def test_collected_records_hold_rows_in_column_order(regressor, tmp_path):
    collecting = serve(regressor, "tests.support.rows_score", collect_dir=str(tmp_path))
    result = score(collecting, [dict(zip(COLUMNS, ROW))])[2]["result"]
    collecting.collector.close()
    import json

    records = [json.loads(line) for f in tmp_path.glob("*.jsonl") for line in f.read_text().splitlines()]
    assert [(r["inputs"], r["predictions"]) for r in records] == [([ROW], result)]


# --- an untyped model: rows of numbers, width from the first row -----------------------------------------------

def test_untyped_model_takes_rows_of_numbers(untyped, app):
    assert score(untyped, [ROW])[2] == score(app, [ROW])[2]
    status, _, body = score(untyped, [ROW, ROW[:3]])
    assert status == 422 and "data[1] has 3 values; data[0] has 10" in body["error"]
    status, _, body = score(untyped, [dict(zip(COLUMNS, ROW))])
    assert status == 422 and "no column names" in body["error"]
    status, _, body = score(untyped, [ROW[:9] + ["x"]])
    assert status == 422 and "data[0] column 9 is not a number: 'x'" in body["error"]
    meta = call(untyped, "GET", "/v2/models/untyped")[2]
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, -1]}]
    spec = call(untyped, "GET", "/openapi.json")[2]
    assert "example" not in spec["paths"]["/score"]["post"]["requestBody"]["content"]["application/json"]


# --- the default score module: any MLflow model through mlflow.pyfunc ------------------------------------------

@pytest.fixture(scope="module")
def pyfunc_dir(tmp_path_factory):
    """A custom mlflow.pyfunc.PythonModel with predict_proba, saved by MLflow with a signature."""
    import mlflow.pyfunc
    import numpy as np
    import pandas as pd
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    class Sizer(mlflow.pyfunc.PythonModel):
        classes_ = ["big", "small"]

        def predict(self, context, model_input, params=None):
            return np.where(model_input["size"].to_numpy() > 10, "big", "small")

        def predict_proba(self, model_input):
            big = (model_input["size"].to_numpy() > 10).astype(float)
            return np.column_stack([big, 1 - big])

    example = pd.DataFrame({"size": [12.0, 3.0], "note": ["a", None], "n": [1, 2]})
    path = tmp_path_factory.mktemp("pyfunc") / "model"
    signature = ModelSignature(Schema([ColSpec("double", "size"), ColSpec("string", "note", required=False),
                                       ColSpec("long", "n", required=False)]))
    mlflow.pyfunc.save_model(str(path), python_model=Sizer(), signature=signature, input_example=example,
                             pip_requirements=[])
    return path


def test_pyfunc_serves_a_python_model_with_probabilities(pyfunc_dir):
    hosted = serve(pyfunc_dir, model_name="sizer")
    status, _, body = score(hosted, [{"size": 20.0, "n": 1}, [1.5, "x", 3]])
    assert status == 200, body
    assert body == {"result": ["big", "small"], "probabilities": [[1.0, 0.0], [0.0, 1.0]], "classes": ["big", "small"]}
    meta = call(hosted, "GET", "/v2/models/sizer")[2]
    assert meta["platform"] == "python_function"
    assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [("size", "FP64"), ("note", "BYTES"), ("n", "INT64")]
    example = call(hosted, "GET", "/openapi.json")[2]["paths"]["/score"]["post"]["requestBody"]["content"]
    assert example["application/json"]["example"] == {"data": [[12.0, "a", 1], [3.0, None, 2]]}


def test_pyfunc_schema_enforcement_refusing_the_input_is_a_422(pyfunc_dir):
    hosted = serve(pyfunc_dir, model_name="sizer")
    status, _, body = score(hosted, [{"size": 20.0, "n": None}])  # MLflow takes no null in an integer column
    assert status == 422 and body["error"].startswith("the model refused the input: "), body


def test_pyfunc_serves_a_scikit_learn_model_like_its_own_score_module(regressor, app):
    hosted = serve(regressor, model_name="regression")
    assert score(hosted, [ROW, ROW[::-1]])[2]["result"] == pytest.approx(score(app, [ROW, ROW[::-1]])[2]["result"])
    assert hosted.v2.metadata["platform"] == "sklearn"


def test_pyfunc_corrupt_model_is_a_clear_error_at_start(tmp_path):
    (tmp_path / "MLmodel").write_text("flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n"
                                      "    model_path: model.pkl\n")
    (tmp_path / "model.pkl").write_bytes(b"garbage")
    with pytest.raises(RuntimeError, match="missing, corrupt or incompatible"):
        serve(tmp_path)


def test_request_ids_are_unique_when_the_client_sends_none(app, regressor):
    other = serve(regressor, "tests.support.rows_score")
    ids = [score(hosted, [ROW])[1]["x-request-id"] for hosted in (app, app, app, other, other)]
    assert len(set(ids)) == 5 and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_a_classifier_returning_too_few_probability_rows_is_a_500_not_a_short_answer(tmp_path):
    failing = serve(tmp_path, "tests.support.failing_score")
    status, _, body = score(failing, [[6, 0], [6, 0], [6, 0]])
    assert status == 500 and body["error"] == "internal error while scoring"
    status, _, body = score(failing, [[7, 0]])  # the module refusing the rows is the client's 422
    assert status == 422 and body["error"] == "mode 7 refuses every row"


def test_collected_records_carry_the_served_model_version_and_refused_requests_none(regressor, tmp_path):
    """Drift detection counts only what the live version served (ml_service/monitor/check.py): the version in
    each collected record is the one the service was started with."""
    collecting = serve(regressor, "tests.support.rows_score", model_name="regression", model_version="41",
                       collect_dir=str(tmp_path))
    assert score(collecting, [ROW])[0] == 200
    inputs = [{"name": "input-0", "shape": [1, 10], "datatype": "FP64", "data": ROW}]
    assert call(collecting, "POST", "/v2/models/regression/infer", {"inputs": inputs}, JSON)[0] == 200
    assert score(collecting, [ROW[:3]])[0] == 422
    collecting.collector.close()
    import json

    records = [json.loads(line) for f in tmp_path.glob("*.jsonl") for line in f.read_text().splitlines()]
    assert [r["model_version"] for r in records] == ["41", "41"]
    assert all(r["request_id"] and r["inputs"] == [ROW] for r in records)


def test_v2_infer_is_only_served_under_this_models_name(app):
    tensor = {"inputs": [{"name": "input-0", "shape": [1, 10], "datatype": "FP64", "data": ROW}]}
    for path in ("/v2/models/other/infer", "/v2/models/other/versions/3/infer", "/v2/models/other/ready",
                 "/v2/models/regressionx/infer", "/v2/models/regression/versions/4/infer"):
        status, _, body = call(app, "POST" if path.endswith("infer") else "GET", path, tensor, JSON)
        assert status == 404, (path, body)
    assert call(app, "POST", "/v2/models/regression/versions/3/infer", tensor, JSON)[0] == 200


@pytest.mark.parametrize("data, message", [
    (ROW + ROW + [1.0], "inputs[0].data has 21 values; shape [2, 10] needs 20"),
    (ROW + ROW[:9], "inputs[0].data has 19 values; shape [2, 10] needs 20"),
    ([ROW, ROW, ROW], "inputs[0].data has 3 rows; shape says 2"),
])
def test_v2_tensor_data_must_fill_its_shape_exactly(app, data, message):
    tensor = {"inputs": [{"name": "input-0", "shape": [2, 10], "datatype": "FP64", "data": data}]}
    status, _, body = call(app, "POST", "/v2/models/regression/infer", tensor, JSON)
    assert status == 422 and body["error"] == message


def test_v2_optional_columns_may_be_left_out_and_a_column_may_not_be_sent_twice(classifier):
    required = [{"name": "radius", "shape": [1], "datatype": "FP64", "data": [9.5]},
                {"name": "count", "shape": [1], "datatype": "INT64", "data": [2]},
                {"name": "smooth", "shape": [1], "datatype": "BOOL", "data": [True]}]
    status, _, body = call(classifier, "POST", "/v2/models/classifier/infer", {"inputs": required}, JSON)
    assert status == 200, body
    left_out = {"radius": 9.5, "count": 2, "smooth": True}
    assert body["outputs"][0]["data"] == score(classifier, [left_out])[2]["result"]
    twice = required + [dict(required[1])]
    status, _, body = call(classifier, "POST", "/v2/models/classifier/infer", {"inputs": twice}, JSON)
    assert status == 422 and body["error"] == "inputs[3]: column 'count' is sent twice"


def _logged(capsys) -> list[dict]:
    import json

    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def test_the_request_log_holds_the_first_100_predictions_and_says_when_it_left_some_out(regressor, capsys):
    logging = ScoringApp(ServingSettings(model_dir=str(regressor), score_module="tests.support.rows_score",
                                         model_name="regression", model_version="5"))
    capsys.readouterr()
    for rows in (100, 101):
        assert score(logging, [ROW] * rows)[0] == 200
    exactly, over = _logged(capsys)
    assert len(exactly["predictions"]) == 100 and "predictions_truncated" not in exactly
    assert len(over["predictions"]) == 100 and over["predictions_truncated"] is True
    assert (exactly["path"], exactly["status"], exactly["model"], exactly["model_version"]) == (
        "/score", 200, "regression", "5")


def test_a_scoring_key_is_never_written_to_the_log(regressor, capsys):
    key, wrong = "log-secret-" + "s" * 20, "log-wrong-" + "w" * 20
    secured = ScoringApp(ServingSettings(model_dir=str(regressor), score_module="tests.support.rows_score",
                                         api_keys=(key,)))
    capsys.readouterr()
    for presented in (key, wrong):
        score(secured, [ROW], {**JSON, "Authorization": f"Bearer {presented}", "X-Request-Id": "req-1"})
    score(secured, [ROW[:3]], {**JSON, "Authorization": f"Bearer {key}"})
    written = capsys.readouterr()
    logged = [line for line in written.out.splitlines() if line.startswith("{")]
    assert len(logged) == 3 and "req-1" in logged[0]
    assert key not in written.out + written.err and wrong not in written.out + written.err


def test_a_request_id_sent_by_the_client_is_kept_up_to_128_characters(app):
    for sent, kept in (("a" * 128, "a" * 128), ("b" * 129, "b" * 128), ("c" * 5000, "c" * 128)):
        assert score(app, [ROW], {**JSON, "X-Request-Id": sent})[1]["x-request-id"] == kept
