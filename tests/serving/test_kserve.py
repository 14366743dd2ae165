"""The KServe Python SDK's own v2 REST client (kserve.InferenceRESTClient) against `mlops serve` on 127.0.0.1:
health, model readiness, and infer with JSON tensors and with the binary tensor extension, behind a scoring key.

kserve pins pandas<3 and protobuf<7, so it lives in its own environment (.venv/clients/kserve, made by
`make install` from environment_setup/clients/kserve.txt) and runs tests/support/clients/kserve_infer.py
as a client process; this test starts the server, runs the client and checks its answers.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.support.serving_process import scoring_server
from tests.serving.test_http import PATIENTS, post
from tests.support.frame_score import save_classifier

pytestmark = pytest.mark.integration
KEY = "kserve-client-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
# The client environment sits beside the environment running the tests (a worktree shares the checkout's .venv).
CLIENT_PYTHON = Path(sys.prefix) / "clients" / "kserve" / "bin" / "python"
CLIENT = ROOT / "tests" / "support" / "clients" / "kserve_infer.py"
# Each input a column of the classifier's table, typed as the model's v2 metadata says.
COLUMNS = {"radius": "FP64", "texture": "FP64", "grade": "BYTES", "count": "INT64", "smooth": "BOOL"}


def test_kserve_rest_client_infers_with_json_and_binary_tensors_behind_a_key(tmp_path):
    if not CLIENT_PYTHON.exists():
        pytest.fail("the KServe client environment is missing: run `bash environment_setup/clients.sh .venv`")
    classifier = save_classifier(tmp_path / "classifier")
    env = {"MODEL_DIR": str(classifier), "MLOPS_MODEL_NAME": "classifier", "MLOPS_SCORING_KEYS": KEY}
    with scoring_server(env, tmp_path / "server.log") as (_, url):
        status, body = post(f"{url}/score", json.dumps({"data": PATIENTS}).encode(), AUTH)
        assert status == 200
        expected = json.loads(body)
        done = subprocess.run([str(CLIENT_PYTHON), str(CLIENT), url, "classifier", KEY, json.dumps(COLUMNS),
                               json.dumps(PATIENTS)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout)
    assert seen["live"] is True and seen["ready"] is True
    assert seen["model ready"] is True and seen["unknown model ready"] is False
    for form, binary in (("json", False), ("binary", True)):
        assert seen[form]["id"] == f"kserve-{binary}" and seen[form]["model"] == "classifier"
        # binary outputs asked for come back as the extension's raw tensors after the JSON header
        assert seen[form]["content type"] == ("application/octet-stream" if binary else "application/json")
        assert seen[form]["predict"] == expected["result"]
        assert seen[form]["probabilities"] == expected["probabilities"]
    assert seen["no key"] == 401
