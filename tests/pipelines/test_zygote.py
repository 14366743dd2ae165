"""The preloading fork server: steps are forked from it, in their own session, results intact."""
import json
import os

import pytest

from ml_service.pipelines.compute import LocalCompute
from ml_service.pipelines.zygote import Zygote
from tests.conftest import ROOT

pytestmark = pytest.mark.integration


def write_spec(tmp_path, function):
    out = tmp_path / "out"
    out.mkdir()
    spec = {"function": function, "inputs": {}, "params": {}, "output_dir": str(out), "context": {},
            "result_path": str(tmp_path / "result.json"), "error_path": str(tmp_path / "error.json")}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    return tmp_path / "spec.json", out


def test_a_preloaded_step_is_forked_from_the_server(tmp_path):
    spec, out = write_spec(tmp_path, "tests.support.steps:report_parent")
    zygote = Zygote(["json"], dict(os.environ), ROOT, tmp_path / "zygote.log")
    try:
        result = LocalCompute(zygote).run(spec, dict(os.environ), ROOT, tmp_path / "step.log", 60, preloaded=True)
        assert result.ok
        assert int((out / "ppid").read_text()) == zygote.proc.pid
        assert json.loads((tmp_path / "result.json").read_text())["values"] == {"preloaded": True}
    finally:
        zygote.close()
    assert zygote.proc.returncode is not None


def test_a_forked_step_gets_its_own_environment_not_the_servers(tmp_path):
    """The run's server user is given to each forked step; what the step's environment lacks, it lacks too."""
    spec, out = write_spec(tmp_path, "tests.support.steps:report_environment")
    server_env = {**os.environ, "LEFT_OUT": "the server's"}
    zygote = Zygote(["json"], server_env, ROOT, tmp_path / "zygote.log")
    try:
        step_env = {**os.environ, "MLFLOW_TRACKING_USERNAME": "mlops-run-1", "MLFLOW_TRACKING_PASSWORD": "p"}
        result = LocalCompute(zygote).run(spec, step_env, ROOT, tmp_path / "step.log", 60, preloaded=True)
        assert result.ok
        seen = json.loads((out / "env.json").read_text())
        assert seen["MLFLOW_TRACKING_USERNAME"] == "mlops-run-1" and seen["MLFLOW_TRACKING_PASSWORD"] == "p"
        assert "LEFT_OUT" not in seen
    finally:
        zygote.close()
    assert "mlops-run-1" not in (tmp_path / "zygote.log").read_text()


def test_a_step_without_imports_starts_a_fresh_interpreter(tmp_path):
    spec, out = write_spec(tmp_path, "tests.support.steps:report_parent")
    result = LocalCompute(None).run(spec, dict(os.environ), ROOT, tmp_path / "step.log", 60)
    assert result.ok and int((out / "ppid").read_text()) == os.getpid()


def test_a_dead_server_falls_back_to_a_fresh_process(tmp_path):
    spec, out = write_spec(tmp_path, "tests.support.steps:report_parent")
    zygote = Zygote(["json"], {**os.environ, "PYTHONPATH": "/nonexistent"}, ROOT, tmp_path / "z.log")
    zygote.proc.kill()
    zygote.proc.wait()
    try:
        result = LocalCompute(zygote).run(spec, dict(os.environ), ROOT, tmp_path / "step.log", 60, preloaded=True)
        assert result.ok and int((out / "ppid").read_text()) == os.getpid()
    finally:
        zygote.close()


def sleeps(inputs, params, output_dir, context):
    """A step that would end by itself, successfully, after `seconds`."""
    import time

    time.sleep(params["seconds"])
    return {}


def spec_with_params(tmp_path, function, params):
    spec, out = write_spec(tmp_path, function)
    data = json.loads(spec.read_text())
    data["params"] = params
    spec.write_text(json.dumps(data))
    return spec


@pytest.mark.parametrize("forked", [True, False], ids=["forked", "fresh"])
def test_a_step_still_running_at_its_timeout_in_seconds_is_killed(tmp_path, forked):
    spec = spec_with_params(tmp_path, "tests.pipelines.test_zygote:sleeps", {"seconds": 30})
    zygote = Zygote(["json"], dict(os.environ), ROOT, tmp_path / "z.log") if forked else None
    try:
        result = LocalCompute(zygote).run(spec, dict(os.environ), ROOT, tmp_path / "step.log", 1, preloaded=forked)
    finally:
        if zygote is not None:
            zygote.close()
    assert (result.ok, result.timed_out) == (False, True)
    assert not (tmp_path / "result.json").exists()  # it never finished
