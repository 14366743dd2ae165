"""How a step's process ended (pipelines/compute.py): only exit code 0 within the timeout is success, and the
reason is said in words; an unknown compute target is refused."""
import pytest

from ml_service.pipelines.compute import ComputeError, LocalCompute, ProcessResult, get_compute


@pytest.mark.parametrize("result, ok, words", [
    (ProcessResult(0), True, "exited with code 0"),
    (ProcessResult(0, timed_out=True), False, "timed out; its process tree was killed"),
    (ProcessResult(-9, timed_out=True), False, "timed out; its process tree was killed"),
    (ProcessResult(3), False, "exited with code 3"),
    (ProcessResult(-9), False, "killed by signal 9 (SIGKILL)"),
    (ProcessResult(-15), False, "killed by signal 15 (SIGTERM)"),
])
def test_only_exit_code_zero_in_time_is_success_and_the_reason_is_named(result, ok, words):
    assert result.ok is ok and result.describe() == words


def test_compute_targets_are_local_or_docker_with_settings():
    assert isinstance(get_compute("local"), LocalCompute)
    with pytest.raises(ComputeError) as unknown:
        get_compute("gpu-cluster")
    assert str(unknown.value) == "unknown compute target 'gpu-cluster' (available: local, docker)"
    with pytest.raises(ComputeError):
        get_compute("docker")  # without the workspace's settings there is no image to run it in
