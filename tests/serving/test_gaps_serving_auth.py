"""Scoring auth covers every route that runs the model, not only /score (issue 19: v2 infer was open).

The app is driven in-process through the ASGI protocol with a model built here (tests/support/rows_score.py).
"""
import pytest

from ml_service.serving.app import ScoringApp
from ml_service.serving.auth import authorized
from ml_service.serving.config import ServingSettings
from tests.support.asgi import call
from tests.support.rows_score import save_regressor

KEY = "scoring-key-" + "k" * 20
ROW = [59, 2.0, 32.1, 101.0, 157.0, 93.2, 38.0, 4.0, 4.8598, 87.0]
TENSOR = {"inputs": [{"name": "input-0", "shape": [1, 10], "datatype": "FP64", "data": ROW}]}
BEARER = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
WRONG = {"Content-Type": "application/json", "Authorization": "Bearer " + "x" * len(KEY)}


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    model_dir = save_regressor(tmp_path_factory.mktemp("regressor"))
    return ScoringApp(ServingSettings(model_dir=str(model_dir), score_module="tests.support.rows_score",
                                      model_name="regression", model_version="1", log_requests=False,
                                      api_keys=(KEY,)))


@pytest.mark.parametrize("method, path, body", [
    ("POST", "/score", {"data": [ROW]}),
    ("POST", "/v2/models/regression/infer", TENSOR),
    ("GET", "/v2/models/regression", b""),
])
def test_every_model_route_needs_the_key(secured, method, path, body):
    for headers in ({"Content-Type": "application/json"}, WRONG):
        status, response_headers, answer = call(secured, method, path, body, headers)
        assert status == 401 and answer["error"] == "unauthorized", (path, status, answer)
        assert response_headers["www-authenticate"] == "Bearer"
        assert "outputs" not in answer and "result" not in answer
    status, _, answer = call(secured, method, path, body, BEARER)
    assert status == 200, answer


def test_v2_infer_with_the_key_returns_the_prediction_and_without_it_nothing(secured):
    status, _, answer = call(secured, "POST", "/v2/models/regression/infer", TENSOR, BEARER)
    assert status == 200 and len(answer["outputs"][0]["data"]) == 1
    assert call(secured, "POST", "/v2/models/regression/infer", TENSOR, {})[0] == 401


@pytest.mark.parametrize("path", ["/v2/health/live", "/v2/health/ready", "/metrics"])
def test_probes_and_metrics_need_no_key(secured, path):
    assert call(secured, "GET", path)[0] == 200


@pytest.mark.parametrize("header, expected", [
    (None, False), (b"", False), (f"Bearer {KEY}".encode(), True), (f"bearer {KEY}".encode(), True),
    (f"Basic {KEY}".encode(), False), (b"Bearer ", False), (f"Bearer {KEY}x".encode(), False),
    (f"Bearer  {KEY} ".encode(), True), (KEY.encode(), False),
])
def test_the_bearer_header_is_parsed_strictly(header, expected):
    assert authorized(header, (KEY,)) is expected
    assert authorized(header, ("another-key-" + "y" * 20, KEY)) is expected  # any configured key, in any place
    assert authorized(header, (KEY, "another-key-" + "y" * 20)) is expected


def test_no_keys_means_open_and_an_empty_bearer_never_matches():
    assert authorized(None, ()) is True
    assert authorized(b"Bearer ", ("",)) is False


def test_without_a_bearer_header_no_key_matches_whatever_it_is():
    for key in ("XXXX", "", " "):
        assert authorized(None, (key,)) is False and authorized(b"Basic " + key.encode(), (key,)) is False
