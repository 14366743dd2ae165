"""Scoring keys (auth.py, and their use by the app): every route that runs or describes the model needs a key
when keys are set, the public paths need none, and a client without a key learns nothing of which paths exist.

Folded in from test_gaps_serving_auth.py: auth covers every route that runs the model, not only /score
(issue 19: v2 infer was open). The app is driven in-process through the ASGI protocol with a model built here
(tests/support/rows_score.py).
"""
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml_service.serving.app import PUBLIC, ScoringApp
from ml_service.serving.auth import authorized
from ml_service.serving.config import ServingConfigError, ServingSettings, load_serving_settings
from tests.support.asgi import call
from tests.support.rows_score import save_regressor

KEY = "scoring-key-" + "k" * 20
OTHER = "another-key-" + "y" * 20
ROW = [59, 2.0, 32.1, 101.0, 157.0, 93.2, 38.0, 4.0, 4.8598, 87.0]
TENSOR = {"inputs": [{"name": "input-0", "shape": [1, 10], "datatype": "FP64", "data": ROW}]}
BEARER = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
WRONG = {"Content-Type": "application/json", "Authorization": "Bearer " + "x" * len(KEY)}
# Every route that runs or describes the model, in each form the Open Inference Protocol allows.
MODEL_ROUTES = [
    ("POST", "/score", {"data": [ROW]}),
    ("POST", "/v2/models/regression/infer", TENSOR),
    ("POST", "/v2/models/regression/versions/1/infer", TENSOR),
    ("GET", "/v2/models/regression", b""),
    ("HEAD", "/v2/models/regression", b""),
    ("GET", "/v2/models/regression/versions/1", b""),
    ("GET", "/v2/models/regression/ready", b""),
    ("GET", "/v2/models/regression/versions/1/ready", b""),
    ("GET", "/v2", b""),
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_regressor(tmp_path_factory.mktemp("regressor"))


@pytest.fixture(scope="module")
def secured(model_dir):
    return ScoringApp(ServingSettings(model_dir=str(model_dir), score_module="tests.support.rows_score",
                                      model_name="regression", model_version="1", log_requests=False,
                                      api_keys=(KEY, OTHER)))


def score(app, data, headers):
    return call(app, "POST", "/score", {"data": data}, headers)


@pytest.mark.parametrize("method, path, body", MODEL_ROUTES)
def test_every_model_route_needs_the_key(secured, method, path, body):
    for headers in ({"Content-Type": "application/json"}, WRONG, {**WRONG, "Authorization": f"Basic {KEY}"}):
        status, response_headers, answer = call(secured, method, path, body, headers)
        assert status == 401 and response_headers["www-authenticate"] == "Bearer", (path, status, answer)
        if method != "HEAD":
            assert answer["error"] == "unauthorized" and "outputs" not in answer and "result" not in answer
    for key in (KEY, OTHER):  # any configured key opens it
        status, _, answer = call(secured, method, path, body, {**BEARER, "Authorization": f"Bearer {key}"})
        assert status == 200, answer


def test_v2_infer_with_the_key_returns_the_prediction_and_without_it_nothing(secured):
    status, _, answer = call(secured, "POST", "/v2/models/regression/infer", TENSOR, BEARER)
    assert status == 200 and len(answer["outputs"][0]["data"]) == 1
    assert call(secured, "POST", "/v2/models/regression/infer", TENSOR, {})[0] == 401


@pytest.mark.parametrize("path", sorted(PUBLIC))
def test_probes_metrics_and_the_api_description_need_no_key(secured, path):
    assert PUBLIC == {"/v2/health/live", "/v2/health/ready", "/metrics", "/openapi.json", "/docs"}  # docs/serving.md
    for method in ("GET", "HEAD"):
        assert call(secured, method, path)[0] == 200, (method, path)
    assert call(secured, "DELETE", path)[0] == 405  # public paths: their methods only


def test_auth_when_keys_are_configured(model_dir):
    key = "k" * 24
    secured = ScoringApp(ServingSettings(model_dir=str(model_dir), score_module="tests.support.rows_score",
                                         log_requests=False, api_keys=(key,)))
    json_only = {"Content-Type": "application/json"}
    assert score(secured, [ROW], json_only)[0] == 401
    status, headers, body = score(secured, [ROW], {**json_only, "Authorization": "Bearer " + "x" * 24})
    assert status == 401 and body["error"] == "unauthorized" and headers["www-authenticate"] == "Bearer"
    assert score(secured, [ROW], {**json_only, "Authorization": f"Bearer {key}"})[0] == 200
    assert call(secured, "GET", "/v2/health/ready")[0] == 200  # probes need no key
    assert "security" in call(secured, "GET", "/openapi.json")[2]["paths"]["/score"]["post"]


def test_without_a_key_every_path_but_health_metrics_and_docs_is_401_whether_it_exists_or_not(model_dir):
    key = "k" * 24
    secured = ScoringApp(ServingSettings(model_dir=str(model_dir), score_module="tests.support.rows_score",
                                         model_name="regression", log_requests=False, api_keys=(key,)))
    for method, path in (("GET", "/nope"), ("DELETE", "/score"), ("GET", "/v2/models/other"), ("GET", "/v2"),
                         ("POST", "/v2/models/regression/infer"), ("GET", "/v2/models/regression/nope")):
        status, headers, body = call(secured, method, path)
        assert (status, body["error"], headers["www-authenticate"]) == (401, "unauthorized", "Bearer"), path
    with_key = {"Authorization": f"Bearer {key}"}
    assert call(secured, "GET", "/nope", headers=with_key)[0] == 404
    assert call(secured, "DELETE", "/score", headers=with_key)[0] == 405
    assert call(secured, "GET", "/v2/models/other", headers=with_key)[0] == 404
    for path in ("/v2/health/live", "/v2/health/ready", "/metrics", "/openapi.json", "/docs"):
        assert call(secured, "GET", path)[0] == 200, path
        assert call(secured, "DELETE", path)[0] == 405, path


def test_without_keys_every_route_is_open(model_dir):
    open_app = ScoringApp(ServingSettings(model_dir=str(model_dir), score_module="tests.support.rows_score",
                                          model_name="regression", model_version="1", log_requests=False))
    for method, path, body in MODEL_ROUTES:
        assert call(open_app, method, path, body, {"Content-Type": "application/json"})[0] == 200, path


# --- the header: Bearer KEY, strictly -------------------------------------------------------------------------

@pytest.mark.parametrize("header, expected", [
    (None, False), (b"", False), (f"Bearer {KEY}".encode(), True), (f"bearer {KEY}".encode(), True),
    (f"BEARER {KEY}".encode(), True), (f"Basic {KEY}".encode(), False), (b"Bearer ", False),
    (f"Bearer {KEY}x".encode(), False), (f"Bearer {KEY[:-1]}".encode(), False),
    (f"Bearer  {KEY} ".encode(), True), (KEY.encode(), False), (f"Bearer{KEY}".encode(), False),
])
def test_the_bearer_header_is_parsed_strictly(header, expected):
    assert authorized(header, (KEY,)) is expected
    assert authorized(header, (OTHER, KEY)) is expected  # any configured key, in any place
    assert authorized(header, (KEY, OTHER)) is expected


def test_no_keys_means_open_and_an_empty_bearer_never_matches():
    assert authorized(None, ()) is True
    assert authorized(b"Bearer ", ("",)) is False


def test_without_a_bearer_header_no_key_matches_whatever_it_is():
    for key in ("XXXX", "", " "):
        assert authorized(None, (key,)) is False and authorized(b"Basic " + key.encode(), (key,)) is False


KEYS = st.text(string.ascii_letters + string.digits + "-_.~+/", min_size=16, max_size=40)


@settings(max_examples=200, deadline=None)
@given(keys=st.lists(KEYS, min_size=1, max_size=4, unique=True), presented=KEYS, index=st.integers(0, 3),
       scheme=st.sampled_from(["Bearer", "bearer", "BEARER", "bEaReR"]), pad=st.sampled_from(["", " ", "  "]))
def test_a_presented_key_opens_exactly_when_it_is_one_of_the_keys(keys, presented, index, scheme, pad):
    configured = keys[index % len(keys)]
    assert authorized(f"{scheme} {pad}{configured}{pad}".encode(), tuple(keys)) is True
    assert authorized(f"{scheme} {presented}".encode(), tuple(keys)) is (presented in keys)
    assert authorized(f"Basic {configured}".encode(), tuple(keys)) is False
    assert authorized(f"{scheme} {configured[:-1]}".encode(), tuple(keys)) is (configured[:-1] in keys)


# --- keys from the environment ---------------------------------------------------------------------------------

def test_short_keys_and_missing_key_files_are_refused(tmp_path):
    with pytest.raises(ServingConfigError, match="at least 16"):
        load_serving_settings({"MLOPS_SCORING_KEYS": "short"})
    with pytest.raises(ServingConfigError, match="MLOPS_SCORING_KEY_FILE"):
        load_serving_settings({"MLOPS_SCORING_KEY_FILE": str(tmp_path / "none")})
    (tmp_path / "keys").write_text("a" * 20 + "\n")
    assert load_serving_settings({"MLOPS_SCORING_KEY_FILE": str(tmp_path / "keys")}).api_keys == ("a" * 20,)


def test_a_key_of_exactly_16_characters_is_the_shortest_taken(tmp_path):
    assert load_serving_settings({"MLOPS_SCORING_KEYS": "k" * 16}).api_keys == ("k" * 16,)
    with pytest.raises(ServingConfigError, match="at least 16"):
        load_serving_settings({"MLOPS_SCORING_KEYS": "k" * 15})
    with pytest.raises(ServingConfigError, match="at least 16"):  # one short key among good ones: refused
        load_serving_settings({"MLOPS_SCORING_KEYS": f"{'a' * 20},{'k' * 15}"})
    (tmp_path / "keys").write_text("k" * 15 + "\n")
    with pytest.raises(ServingConfigError, match="at least 16"):
        load_serving_settings({"MLOPS_SCORING_KEY_FILE": str(tmp_path / "keys")})


def test_keys_from_the_variable_and_the_file_are_all_taken(tmp_path):
    (tmp_path / "keys").write_text(f"\n  {'f' * 16}  \n\n{'g' * 30}\n")
    settings = load_serving_settings({"MLOPS_SCORING_KEYS": f" {'e' * 16} , ,{'d' * 17}",
                                      "MLOPS_SCORING_KEY_FILE": str(tmp_path / "keys")})
    assert settings.api_keys == ("e" * 16, "d" * 17, "f" * 16, "g" * 30) and settings.auth_enabled
    assert "e" * 16 not in repr(settings)  # never in a log line that prints the settings
    (tmp_path / "empty").write_text("\n \n")
    with pytest.raises(ServingConfigError, match="holds no key"):
        load_serving_settings({"MLOPS_SCORING_KEY_FILE": str(tmp_path / "empty")})
    assert load_serving_settings({}).api_keys == () and not load_serving_settings({}).auth_enabled
