"""Step reuse through the real runner and a real MLflow store: `reuse: false` always runs, a changed
requirements file reruns every step, an unchanged step is reused and names the run it reused."""
from __future__ import annotations

import pytest

from ml_service.pipelines.definition import parse_pipeline
from ml_service.pipelines.runner import REUSED_TAG, run_pipeline

pytestmark = pytest.mark.integration


def test_reuse_false_runs_every_time_and_requirements_are_in_the_key(workspace, tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("numpy==2.0\n")
    pipeline = parse_pipeline(f"""
name: reuse-check
requirements: ["{requirements}"]
steps:
  cached: {{function: "tests.support.steps:write_output", params: {{which: cached}}}}
  always: {{function: "tests.support.steps:write_output", after: [cached], reuse: false}}
""")
    first = run_pipeline(workspace, pipeline)
    assert first.ok, first.error
    assert [s.status for s in first.steps] == ["done", "done"]

    second = run_pipeline(workspace, pipeline)
    by_name = {s.name: s for s in second.steps}
    assert by_name["cached"].status == "reused" and by_name["cached"].source_run_id == first.steps[0].source_run_id
    assert by_name["always"].status == "done"  # reuse: false runs again
    assert by_name["always"].run_id not in (first.steps[1].run_id, "")

    from ml_service.workspace.tracking import connect

    client = connect(workspace)
    assert client.get_run(by_name["cached"].run_id).data.tags[REUSED_TAG] == first.steps[0].source_run_id
    assert REUSED_TAG not in client.get_run(by_name["always"].run_id).data.tags

    requirements.write_text("numpy==2.1\n")  # a new environment: nothing may be reused
    third = run_pipeline(workspace, pipeline)
    assert [s.status for s in third.steps] == ["done", "done"]
    assert REUSED_TAG not in client.get_run(third.steps[0].run_id).data.tags

    forced = run_pipeline(workspace, pipeline, reuse_steps=False)  # --no-reuse
    assert [s.status for s in forced.steps] == ["done", "done"]
