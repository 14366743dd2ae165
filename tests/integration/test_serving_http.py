"""The scoring service as a real process over real HTTP on 127.0.0.1."""
import json
import subprocess
import sys
import urllib.request

import pytest

from ml_service.deploy.smoke import SmokeTestError, smoke_test
from tests.conftest import ROOT
from tests.integration.serving_process import free_port, scoring_server

pytestmark = pytest.mark.integration
KEY = "smoke-test-key-0123456789"


def post(url, body: bytes, headers=None):
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_smoke_test_passes_logs_and_collects(model_dir, tmp_path):
    collect = tmp_path / "collected"
    env = {"MODEL_DIR": str(model_dir), "MLOPS_MODEL_NAME": "diabetes", "MLOPS_MODEL_VERSION": "7",
           "MLOPS_COLLECT_DIR": str(collect)}
    with scoring_server(env, tmp_path / "server.log") as (proc, url):
        result = smoke_test(url, timeout_s=30)
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
    assert records[0]["inputs"] == [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]]
    assert records[0]["predictions"] == result.result


def test_collector_rotates_files_by_size(model_dir, tmp_path):
    collect = tmp_path / "collected"
    env = {"MODEL_DIR": str(model_dir), "MLOPS_COLLECT_DIR": str(collect), "MLOPS_COLLECT_MAX_BYTES": "400",
           "MLOPS_LOG_REQUESTS": "false"}
    with scoring_server(env, tmp_path / "server.log") as (_, url):
        for _ in range(6):
            assert post(f"{url}/score", json.dumps({"data": [[1] * 10]}).encode())[0] == 200
    files = sorted(collect.glob("*.jsonl"))
    assert len(files) >= 2 and all(f.stat().st_size <= 400 for f in files)
    assert sum(len(f.read_text().splitlines()) for f in files) == 6


def test_auth_on_the_wire_and_in_the_smoke_test(model_dir, tmp_path):
    env = {"MODEL_DIR": str(model_dir), "MLOPS_SCORING_KEYS": KEY}
    with scoring_server(env, tmp_path / "server.log") as (_, url):
        assert post(f"{url}/score", json.dumps({"data": [[1] * 10]}).encode())[0] == 401
        with pytest.raises(SmokeTestError, match="HTTP 401"):
            smoke_test(url, timeout_s=10)
        assert smoke_test(url, key=KEY, timeout_s=10).checks[-1] == "malformed request refused"
    assert KEY not in (tmp_path / "server.log").read_text()


def test_a_corrupt_model_stops_the_server_at_start_with_a_clear_error(tmp_path):
    (tmp_path / "model.pkl").write_bytes(b"garbage")
    result = subprocess.run([sys.executable, "-m", "ml_service.serving", "--port", str(free_port())],
                            env={"MODEL_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}, cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "corrupt or incompatible" in result.stderr


def test_smoke_test_cli_reports_an_unreachable_url():
    result = subprocess.run([sys.executable, "-m", "ml_service.cli", "smoke-test", f"http://127.0.0.1:{free_port()}",
                             "--timeout", "2"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 1 and "not ready after 2s" in result.stderr
