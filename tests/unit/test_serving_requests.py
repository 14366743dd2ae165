"""Request handling of the scoring app, one test per bad-input class, through the ASGI protocol."""
import pytest

from ml_service.serving.app import ScoringApp
from ml_service.serving.config import ServingConfigError, ServingSettings, load_serving_settings
from tests.unit.asgi import call

ROW = [59.0, 2.0, 32.1, 101.0, 157.0, 93.2, 38.0, 4.0, 4.8598, 87.0]
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def app(model_dir):
    return ScoringApp(ServingSettings(model_dir=str(model_dir), model_name="diabetes", model_version="3",
                                      max_body_bytes=2000, log_requests=False))


def test_score_returns_one_prediction_per_row(app):
    status, headers, body = call(app, "POST", "/score", {"data": [ROW, ROW[::-1]]}, JSON)
    assert status == 200 and len(body["result"]) == 2
    assert headers["x-request-id"]


def test_fast_linear_path_matches_the_model(app, model_dir):
    import pickle

    model = pickle.loads((model_dir / "model.pkl").read_bytes())
    _, _, body = call(app, "POST", "/score", {"data": [ROW]}, JSON)
    assert body["result"][0] == pytest.approx(float(model.predict([ROW])[0]), rel=1e-12)


@pytest.mark.parametrize("name, body, headers, status, message", [
    ("invalid JSON", b'{"data": [', JSON, 400, "invalid JSON"),
    ("empty body", b"", JSON, 400, "empty request body"),
    ("deeply nested JSON", b"[" * 1500, JSON, 400, "nested too deeply"),
    ("not an object", [1, 2], JSON, 422, "expected a JSON object"),
    ("wrong feature count", {"data": [[1, 2, 3]]}, JSON, 422, "has 3 features; the model expects 10"),
    ("rows not lists", {"data": [1, 2]}, JSON, 422, "must be a list of numbers"),
    ("strings", {"data": [ROW[:9] + ["x"]]}, JSON, 422, "is not a number: 'x'"),
    ("booleans", {"data": [ROW[:9] + [True]]}, JSON, 422, "is not a number: True"),
    ("NaN", b'{"data": [[1,2,3,4,5,6,7,8,9,NaN]]}', JSON, 422, "is not finite"),
    ("infinity", b'{"data": [[1,2,3,4,5,6,7,8,9,Infinity]]}', JSON, 422, "is not finite"),
    ("empty batch", {"data": []}, JSON, 422, "is empty"),
    ("too large", {"data": [ROW] * 100}, JSON, 413, "over the limit"),
    ("wrong content type", {"data": [ROW]}, {"Content-Type": "text/plain"}, 415, "must be application/json"),
    ("no content type", {"data": [ROW]}, {}, 415, "must be application/json"),
])
def test_bad_input_gets_a_4xx_json_error_naming_the_problem(app, name, body, headers, status, message):
    got, response_headers, payload = call(app, "POST", "/score", body, headers)
    assert got == status, payload
    assert message in payload["error"] and payload["request_id"] == response_headers["x-request-id"]


def test_body_over_the_limit_without_content_length_is_413(app):
    status, _, payload = call(app, "POST", "/score", {"data": [ROW] * 100}, JSON, chunk=500)
    assert status == 413


def test_wrong_method_and_unknown_path(app):
    assert call(app, "GET", "/score")[0] == 405
    assert call(app, "GET", "/nope")[0] == 404


def test_an_exception_in_run_is_a_500_with_request_id_and_no_traceback(model_dir, capsys):
    failing = ScoringApp(ServingSettings(model_dir=str(model_dir), score_module="tests.unit.failing_score",
                                         log_requests=False))
    status, headers, body = call(failing, "POST", "/score", {"data": [ROW]}, {**JSON, "X-Request-Id": "abc123"})
    assert status == 500 and body == {"error": "internal error while scoring", "request_id": "abc123"}
    assert "secret internal detail" not in str(body)
    assert "secret internal detail" in capsys.readouterr().err  # logged on the server side
    assert call(failing, "GET", "/v2/health/live")[0] == 200  # and the app still serves


def test_v2_infer_accepts_flat_and_nested_data(app):
    flat = {"inputs": [{"name": "input-0", "shape": [2, 10], "datatype": "FP64", "data": ROW + ROW}]}
    nested = {"inputs": [{"name": "input-0", "shape": [2, 10], "datatype": "FP32", "data": [ROW, ROW]}]}
    for payload in (flat, nested):
        status, _, body = call(app, "POST", "/v2/models/diabetes/infer", payload, JSON)
        assert status == 200 and body["outputs"][0]["shape"] == [2] and body["model_version"] == "3"


@pytest.mark.parametrize("payload, message", [
    ({"inputs": []}, "expected"),
    ({"inputs": [{"name": "x", "shape": [1, 10], "datatype": "BYTES", "data": ROW}]}, "not numeric"),
    ({"inputs": [{"name": "x", "shape": [2, 10], "datatype": "FP64", "data": ROW}]}, "needs 20"),
    ({"inputs": [{"name": "x", "shape": [1, 10], "datatype": "FP64"}]}, "missing data"),
])
def test_v2_bad_tensors_are_422(app, payload, message):
    status, _, body = call(app, "POST", "/v2/models/diabetes/infer", payload, JSON)
    assert status == 422 and message in body["error"]


def test_v2_metadata_health_and_unknown_model(app):
    status, _, meta = call(app, "GET", "/v2/models/diabetes")
    assert status == 200 and meta["inputs"][0]["shape"] == [-1, 10] and meta["versions"] == ["3"]
    assert call(app, "GET", "/v2/health/live")[2] == {"live": True}
    assert call(app, "GET", "/v2/health/ready")[2] == {"ready": True}
    assert call(app, "GET", "/v2/models/other")[0] == 404


def test_metrics_count_requests_errors_and_predictions(app):
    call(app, "POST", "/score", {"data": [ROW, ROW]}, JSON)
    call(app, "POST", "/score", b"{", JSON)
    _, headers, text = call(app, "GET", "/metrics")
    text = text.decode()
    assert headers["content-type"].startswith("text/plain")
    assert 'mlops_predictions_total{model="diabetes",version="3"}' in text
    assert 'mlops_request_errors_total{model="diabetes",status="400",version="3"}' in text
    assert "mlops_request_duration_seconds_bucket" in text


def test_openapi_and_docs(app):
    status, _, spec = call(app, "GET", "/openapi.json")
    assert status == 200 and "/score" in spec["paths"] and "/v2/models/diabetes/infer" in spec["paths"]
    status, headers, page = call(app, "GET", "/docs")
    assert status == 200 and headers["content-type"].startswith("text/html") and b"/openapi.json" in page


def test_auth_when_keys_are_configured(model_dir):
    key = "k" * 24
    secured = ScoringApp(ServingSettings(model_dir=str(model_dir), api_keys=(key,), log_requests=False))
    assert call(secured, "POST", "/score", {"data": [ROW]}, JSON)[0] == 401
    status, headers, body = call(secured, "POST", "/score", {"data": [ROW]},
                                 {**JSON, "Authorization": "Bearer " + "x" * 24})
    assert status == 401 and body["error"] == "unauthorized" and headers["www-authenticate"] == "Bearer"
    assert call(secured, "POST", "/score", {"data": [ROW]}, {**JSON, "Authorization": f"Bearer {key}"})[0] == 200
    assert call(secured, "GET", "/v2/health/ready")[0] == 200  # probes need no key


def test_short_keys_and_missing_key_files_are_refused(tmp_path):
    with pytest.raises(ServingConfigError, match="at least 16"):
        load_serving_settings({"MLOPS_SCORING_KEYS": "short"})
    with pytest.raises(ServingConfigError, match="MLOPS_SCORING_KEY_FILE"):
        load_serving_settings({"MLOPS_SCORING_KEY_FILE": str(tmp_path / "none")})
    (tmp_path / "keys").write_text("a" * 20 + "\n")
    assert load_serving_settings({"MLOPS_SCORING_KEY_FILE": str(tmp_path / "keys")}).api_keys == ("a" * 20,)
