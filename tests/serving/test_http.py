"""The scoring service as a real process over real HTTP on 127.0.0.1, with models built here: a regression on
rows, and a classifier on a table with a text column served by the default (MLflow pyfunc) score module."""
import json
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from ml_service.config import PACKAGE_ROOT
from ml_service.deploy.smoke import SmokeTestError, smoke_test
from tests.support.serving_process import free_port, scoring_server
from tests.support.frame_score import save_classifier
from tests.support.rows_score import EXAMPLE, save_regressor

pytestmark = pytest.mark.integration
KEY = "smoke-test-key-0123456789"
ROWS_SCORE = {"MLOPS_SCORE_MODULE": "tests.support.rows_score"}
PATIENTS = [{"radius": 22.0, "texture": 19.5, "grade": "high", "count": 4, "smooth": False},
            {"radius": 9.0, "texture": 17.0, "grade": "low", "count": 1, "smooth": True},
            {"radius": 16.5, "texture": 25.0, "grade": "mid", "count": 7, "smooth": True}]


def post(url, body: bytes, headers=None):
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture(scope="module")
def regressor(tmp_path_factory):
    return save_regressor(tmp_path_factory.mktemp("regressor"))


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    return save_classifier(tmp_path_factory.mktemp("classifier"))


def test_smoke_test_passes_logs_and_collects(regressor, tmp_path):
    collect = tmp_path / "collected"
    env = {**ROWS_SCORE, "MODEL_DIR": str(regressor), "MLOPS_MODEL_NAME": "regression", "MLOPS_MODEL_VERSION": "7",
           "MLOPS_COLLECT_DIR": str(collect)}
    with scoring_server(env, tmp_path / "server.log") as (proc, url):
        result = smoke_test(url, timeout_s=30)  # the payload: the example the server advertises
        assert result.checks == ["ready", "score", "v2 infer", "malformed request refused"]
        assert post(f"{url}/score", b"\xff\xfe garbage")[0] == 400
        assert post(f"{url}/score", b"[" * 100000)[0] in (400, 413)
        assert proc.poll() is None  # no request stopped it
    lines = [json.loads(line) for line in (tmp_path / "server.log").read_text().splitlines() if line.startswith("{")]
    scored = [line for line in lines if line["path"] == "/score" and line["status"] == 200]
    assert scored and scored[0]["traceparent"].startswith("00-") and scored[0]["request_id"]
    assert scored[0]["model_version"] == "7" and len(scored[0]["predictions"]) == 2
    records = [json.loads(line) for f in sorted(collect.glob("*.jsonl")) for line in f.read_text().splitlines()]
    assert len(records) == 2  # /score and v2 infer; refused requests are not collected
    assert records[0]["inputs"] == EXAMPLE and records[1]["inputs"] == EXAMPLE
    assert records[0]["predictions"] == result.result


def test_collector_rotates_files_by_size(regressor, tmp_path):
    collect = tmp_path / "collected"
    env = {**ROWS_SCORE, "MODEL_DIR": str(regressor), "MLOPS_COLLECT_DIR": str(collect),
           "MLOPS_COLLECT_MAX_BYTES": "400", "MLOPS_LOG_REQUESTS": "false"}
    with scoring_server(env, tmp_path / "server.log") as (_, url):
        for _ in range(6):
            assert post(f"{url}/score", json.dumps({"data": [[1] * 10]}).encode())[0] == 200
    files = sorted(collect.glob("*.jsonl"))
    assert len(files) >= 2 and all(f.stat().st_size <= 400 for f in files)
    assert sum(len(f.read_text().splitlines()) for f in files) == 6


def test_auth_on_the_wire_and_in_the_smoke_test(regressor, tmp_path):
    env = {**ROWS_SCORE, "MODEL_DIR": str(regressor), "MLOPS_SCORING_KEYS": KEY}
    with scoring_server(env, tmp_path / "server.log") as (_, url):
        assert post(f"{url}/score", json.dumps({"data": [[1] * 10]}).encode())[0] == 401
        with pytest.raises(SmokeTestError, match="HTTP 401"):
            smoke_test(url, timeout_s=10)
        assert smoke_test(url, key=KEY, timeout_s=10).checks[-1] == "malformed request refused"
    assert KEY not in (tmp_path / "server.log").read_text()


def test_smoke_test_of_an_untyped_model_needs_a_payload_and_sends_a_tensor(tmp_path):
    untyped = save_regressor(tmp_path / "model", signature=False)
    with scoring_server({**ROWS_SCORE, "MODEL_DIR": str(untyped)}, tmp_path / "server.log") as (_, url):
        with pytest.raises(SmokeTestError, match="advertises no example for /score"):
            smoke_test(url, timeout_s=10)
        assert smoke_test(url, timeout_s=10, payload={"data": EXAMPLE}).checks[2] == "v2 infer"


def test_a_classifier_served_as_pyfunc_passes_the_smoke_test_with_records(classifier, tmp_path):
    env = {"MODEL_DIR": str(classifier), "MLOPS_MODEL_NAME": "classifier"}  # the default score module
    with scoring_server(env, tmp_path / "server.log") as (_, url):
        nulls = {"radius": 9.5, "texture": None, "count": 2, "smooth": True}  # grade left out: optional
        result = smoke_test(url, timeout_s=30, payload={"data": PATIENTS + [nulls]})
        assert result.result == ["malignant", "benign", "malignant", "benign"]
        assert smoke_test(url, timeout_s=10).result == ["benign", "malignant"]  # the saved input example
        with pytest.raises(SmokeTestError, match="HTTP 422"):
            smoke_test(url, timeout_s=10, payload={"data": [{"radius": "big"}]})


def test_triton_http_client_gets_the_score_predictions(classifier, tmp_path):
    import numpy as np
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    env = {"MODEL_DIR": str(classifier), "MLOPS_MODEL_NAME": "classifier", "MLOPS_MODEL_VERSION": "4"}
    with scoring_server(env, tmp_path / "server.log") as (_, url):
        status, body = post(f"{url}/score", json.dumps({"data": PATIENTS}).encode())
        assert status == 200
        expected = json.loads(body)
        client = triton.InferenceServerClient(url.removeprefix("http://"))
        try:
            assert client.is_server_live() and client.is_model_ready("classifier")
            metadata = client.get_model_metadata("classifier")
            assert metadata["platform"] == "sklearn" and metadata["versions"] == ["4"]
            numpy_types = {"FP64": np.float64, "INT64": np.int64, "BOOL": np.bool_, "BYTES": np.object_}
            for binary in (False, True):  # JSON tensors, then the binary tensor extension both ways
                inputs = []
                for spec in metadata["inputs"]:  # one input a column, typed as the metadata says
                    values = [p[spec["name"]] for p in PATIENTS]
                    if spec["datatype"] == "BYTES":
                        values = [v.encode() for v in values]
                    tensor = triton.InferInput(spec["name"], [len(PATIENTS)], spec["datatype"])
                    tensor.set_data_from_numpy(np.array(values, dtype=numpy_types[spec["datatype"]]),
                                               binary_data=binary)
                    inputs.append(tensor)
                outputs = [triton.InferRequestedOutput("predict", binary_data=binary),
                           triton.InferRequestedOutput("probabilities", binary_data=binary)]
                answer = client.infer("classifier", inputs, outputs=outputs)
                labels = [v.decode() if isinstance(v, bytes) else v for v in answer.as_numpy("predict").tolist()]
                assert labels == expected["result"]
                assert answer.as_numpy("probabilities").tolist() == expected["probabilities"]
            every = client.infer("classifier", inputs)  # no outputs named: all of them, in binary
            assert every.as_numpy("probabilities").tolist() == expected["probabilities"]
            with pytest.raises(InferenceServerException, match="no input for required column"):
                client.infer("classifier", inputs[:1])
        finally:
            client.close()


def test_kserve_v2_rest_request_plain_json(classifier, tmp_path):
    """A KServe v2 REST request as the protocol writes it: metadata, readiness, infer with JSON tensors."""
    env = {"MODEL_DIR": str(classifier), "MLOPS_MODEL_NAME": "classifier"}
    with scoring_server(env, tmp_path / "server.log") as (_, url):
        status, body = post(f"{url}/score", json.dumps({"data": PATIENTS}).encode())
        expected = json.loads(body)
        with urllib.request.urlopen(f"{url}/v2/models/classifier/ready", timeout=10) as response:
            assert response.status == 200
        datatypes = {"radius": "FP64", "texture": "FP64", "grade": "BYTES", "count": "INT64", "smooth": "BOOL"}
        request = {"id": "kserve-1", "inputs": [{"name": name, "shape": [len(PATIENTS)], "datatype": datatype,
                                                 "data": [p[name] for p in PATIENTS]}
                                                for name, datatype in datatypes.items()]}
        status, body = post(f"{url}/v2/models/classifier/infer", json.dumps(request).encode())
        answer = json.loads(body)
        assert status == 200 and answer["id"] == "kserve-1" and answer["model_name"] == "classifier"
        outputs = {o["name"]: o for o in answer["outputs"]}
        assert outputs["predict"]["data"] == expected["result"] and outputs["predict"]["shape"] == [3]


def test_a_corrupt_model_stops_the_server_at_start_with_a_clear_error(tmp_path):
    (tmp_path / "MLmodel").write_text("flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n"
                                      "    model_path: model.pkl\n")
    (tmp_path / "model.pkl").write_bytes(b"garbage")
    result = subprocess.run([sys.executable, "-m", "ml_service.serving", "--port", str(free_port())],
                            env={"MODEL_DIR": str(tmp_path), "PATH": "/usr/bin:/bin",
                                 "MLFLOW_DISABLE_TELEMETRY": "true"},
                            cwd=PACKAGE_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "corrupt or incompatible" in result.stderr


def test_smoke_test_cli_reports_an_unreachable_url():
    result = subprocess.run([sys.executable, "-m", "ml_service.cli", "smoke-test", f"http://127.0.0.1:{free_port()}",
                             "--timeout", "2"], capture_output=True, text=True, cwd=PACKAGE_ROOT, timeout=60)
    assert result.returncode == 1 and "not ready after 2s" in result.stderr
