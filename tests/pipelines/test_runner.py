"""The pipeline runner (pipelines/runner.py) in-process against a real MLflow store: which step's result is the
pipeline's outcome, `when:` conditions, the timeout handed to the compute in seconds, a Ctrl-C ends the run
KILLED, a failed step stops the run, and a reused step hands later steps the run that really produced it."""
from __future__ import annotations

import pytest

from ml_service.pipelines import runner
from ml_service.pipelines.definition import parse_pipeline
from ml_service.pipelines.runner import EXECUTED_TAG, OUTCOME_TAG, REUSED_TAG, run_pipeline
from ml_service.workspace import tracking

pytestmark = pytest.mark.integration
HERE = "tests.pipelines.test_runner"


def say(inputs, params, output_dir, context):
    """A step that says what it is told: its outcome, a value `flag`, one metric."""
    (output_dir / "said.txt").write_text(str(params.get("outcome", "")))
    return {"outcome": params.get("outcome", ""), "values": {"flag": params.get("flag", False)},
            "metrics": {"n": 1.0}}


def source_of(inputs, params, output_dir, context):
    """A step that reports which run produced another step's outputs (as `register` reads the train run)."""
    return {"outcome": "source " + context["source_runs"].get(params["step"], "none")}


def pipeline(body: str):
    return parse_pipeline(f"name: runner-test\nsteps:\n{body}")


def parent(client, result):
    return client.get_run(result.run_id)


def children(client, settings, result) -> dict:
    experiment = client.get_experiment_by_name(settings.experiment)
    runs = client.search_runs([experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{result.run_id}'")
    return {r.data.tags["mlops.step.name"]: r for r in runs}


OUTCOMES = pipeline(f"""
  a: {{function: "{HERE}:say", params: {{outcome: "A"}}}}
  b: {{function: "{HERE}:say", params: {{outcome: "B", flag: false}}, after: [a]}}
  c: {{function: "{HERE}:say", params: {{outcome: "C"}}, when: b.flag}}
  d: {{function: "{HERE}:say", after: [c]}}
""")


def test_the_outcome_is_the_last_outcome_of_a_step_that_ran_and_a_false_condition_skips(workspace):
    client = tracking.connect(workspace)
    first = run_pipeline(workspace, OUTCOMES)
    assert first.ok, first.error
    assert [(s.name, s.status) for s in first.steps] == [("a", "done"), ("b", "done"), ("c", "skipped"),
                                                         ("d", "done")]
    assert first.outcome == "B" and parent(client, first).data.tags[OUTCOME_TAG] == "B"
    assert parent(client, first).data.tags["mlops.step.c"] == "skipped"
    assert set(children(client, workspace, first)) == {"a", "b", "d"}
    # every step reusable: the no-op recorder decides the same outcome, from the same step
    again = run_pipeline(workspace, OUTCOMES)
    assert parent(client, again).data.tags.get("mlops.recorded_by", "").startswith("light_store")
    assert [s.status for s in again.steps] == ["reused", "reused", "skipped", "reused"]
    assert again.outcome == "B" and parent(client, again).data.tags[OUTCOME_TAG] == "B"
    assert parent(client, again).data.tags["mlops.step.c"] == "skipped"


def test_a_condition_runs_its_step_when_the_value_is_true_and_its_outcome_then_decides(workspace):
    flagged = pipeline(f"""
  b: {{function: "{HERE}:say", params: {{outcome: "B", flag: true}}}}
  c: {{function: "{HERE}:say", params: {{outcome: "C"}}, when: b.flag}}
""")
    result = run_pipeline(workspace, flagged)
    assert [s.status for s in result.steps] == ["done", "done"] and result.outcome == "C"
    nothing = run_pipeline(workspace, pipeline(f'  a: {{function: "{HERE}:say"}}\n'))
    assert nothing.outcome == "completed"


def test_a_condition_on_a_reused_step_reads_its_reused_value(workspace):
    """The second run reuses b: its value `flag` (true) still runs c, which is not reusable (the runner's own
    condition, not the no-op recorder's)."""
    flagged = pipeline(f"""
  b: {{function: "{HERE}:say", params: {{outcome: "B", flag: true}}}}
  c: {{function: "{HERE}:say", params: {{outcome: "C"}}, when: b.flag, reuse: false}}
""")
    assert [s.status for s in run_pipeline(workspace, flagged).steps] == ["done", "done"]
    again = run_pipeline(workspace, flagged)
    assert [s.status for s in again.steps] == ["reused", "done"] and again.outcome == "C"


def test_a_reused_step_hands_later_steps_the_run_that_produced_its_outputs(workspace):
    client = tracking.connect(workspace)
    definition = pipeline(f"""
  train: {{function: "{HERE}:say", params: {{outcome: "trained"}}}}
  show: {{function: "{HERE}:source_of", params: {{step: train}}, after: [train], reuse: false}}
""")
    first = run_pipeline(workspace, definition)
    trained = first.steps[0].run_id
    assert first.outcome == f"source {trained}"
    assert children(client, workspace, first)["train"].data.tags[EXECUTED_TAG] == "true"
    second = run_pipeline(workspace, definition)
    train, show = second.steps
    assert (train.status, train.source_run_id, show.status) == ("reused", trained, "done")
    assert second.outcome == f"source {trained}" and train.run_id != trained
    reused = children(client, workspace, second)["train"]
    assert reused.data.tags[REUSED_TAG] == trained and EXECUTED_TAG not in reused.data.tags
    assert reused.data.metrics == {"n": 1.0}
    forced = run_pipeline(workspace, definition, reuse_steps=False)  # --no-reuse
    assert forced.steps[0].status == "done" and forced.outcome == f"source {forced.steps[0].run_id}"


def test_the_step_timeout_reaches_the_compute_in_seconds(workspace, monkeypatch):
    given = []
    real = runner.get_compute

    def recording(*args, **kwargs):
        compute = real(*args, **kwargs)
        run = compute.run

        def timed(spec, env, cwd, log, timeout_s, **rest):
            given.append(timeout_s)
            return run(spec, env, cwd, log, timeout_s, **rest)

        compute.run = timed
        return compute

    monkeypatch.setattr(runner, "get_compute", recording)
    result = run_pipeline(workspace, pipeline(f"""
  short: {{function: "{HERE}:say", timeout_minutes: 0.5, reuse: false}}
  default: {{function: "{HERE}:say", after: [short], reuse: false}}
"""))
    assert result.ok and given == [30.0, 3600.0]


def test_ctrl_c_during_a_run_ends_it_killed_and_the_interrupt_goes_on(workspace):
    client = tracking.connect(workspace)
    seen = []

    def report(record):
        seen.append((record.name, record.status))
        if (record.name, record.status) == ("b", "pending") and ("b", "pending") not in seen[:-1]:
            raise KeyboardInterrupt()

    with pytest.raises(KeyboardInterrupt):
        run_pipeline(workspace, pipeline(f"""
  a: {{function: "{HERE}:say", reuse: false}}
  b: {{function: "{HERE}:say", after: [a], reuse: false}}
"""), report=report)
    experiment = client.get_experiment_by_name(workspace.experiment)
    [interrupted] = client.search_runs([experiment.experiment_id], "tags.`mlops.kind` = 'pipeline'")
    assert interrupted.info.status == "KILLED"
    assert interrupted.data.tags["mlops.error"] == "interrupted: KeyboardInterrupt: "


def test_a_failed_step_fails_the_run_and_no_later_step_starts(workspace):
    client = tracking.connect(workspace)
    result = run_pipeline(workspace, pipeline("""
  first: {function: "tests.support.steps:write_output", reuse: false}
  broken: {function: "tests.support.steps:raise_error", after: [first]}
  never: {function: "tests.support.steps:write_output", after: [broken]}
"""))
    assert (result.ok, result.status, result.outcome) == (False, "FAILED", "failed")
    assert result.error == "step 'broken' failed: ValueError: the step found something wrong"
    assert [(s.name, s.status) for s in result.steps] == [("first", "done"), ("broken", "failed")]
    run = parent(client, result)
    assert run.info.status == "FAILED" and run.data.tags["mlops.error"] == result.error
    steps = children(client, workspace, result)
    assert set(steps) == {"first", "broken"} and steps["broken"].info.status == "FAILED"
    assert steps["broken"].data.tags["mlops.step.error"] == "ValueError: the step found something wrong"
    missing = run_pipeline(workspace, pipeline(f"""
  b: {{function: "{HERE}:say", params: {{flag: false}}}}
  c: {{function: "{HERE}:say", when: b.flag}}
  d: {{function: "{HERE}:say", inputs: {{previous: {{step: c}}}}}}
"""))
    assert missing.status == "FAILED" and missing.error == "step 'd' needs the outputs of 'c', which did not run"


def test_the_parent_run_names_pipeline_project_build_user_and_owner(workspace, monkeypatch):
    from ml_service.config import load_settings
    from ml_service.workspace import owners

    monkeypatch.setenv("MLOPS_BUILD_ID", "77")
    monkeypatch.setenv("MLOPS_BUILD_URI", "mlops-ci://run/77")
    monkeypatch.setenv("MLOPS_USER", "dev@example.com")
    settings = load_settings()
    result = run_pipeline(settings, pipeline(f'  a: {{function: "{HERE}:say", reuse: false}}\n'),
                          published=("runner-test", "3"))
    tags = parent(tracking.connect(settings), result).data.tags
    expected = {"mlops.kind": "pipeline", "mlops.pipeline.name": "runner-test", "mlops.model.project": settings.project,
                "mlops.model.name": settings.model_name, "BuildId": "77", "BuildUri": "mlops-ci://run/77",
                "mlflow.user": "dev@example.com", "mlops.pipeline.published_version": "3",
                "mlflow.source.type": "PIPELINE", owners.OWNER_TAG: owners.owner_tag()}
    assert {k: tags.get(k) for k in expected} == expected


def test_a_changed_input_file_or_a_moved_alias_runs_the_step_again(workspace, tmp_path):
    client = tracking.connect(workspace)
    data = tmp_path / "data.csv"
    data.write_text("a\n1\n")
    definition = pipeline(f"""
  read: {{function: "{HERE}:say", inputs: {{data: {{path: "{data}"}}}}}}
  judge: {{function: "{HERE}:say", inputs: {{champion: {{alias: champion}}}}}}
""")
    statuses = lambda result: [s.status for s in result.steps]  # noqa: E731
    assert statuses(run_pipeline(workspace, definition)) == ["done", "done"]
    assert statuses(run_pipeline(workspace, definition)) == ["reused", "reused"]
    data.write_text("a\n2\n")
    assert statuses(run_pipeline(workspace, definition)) == ["done", "reused"]
    client.create_registered_model(workspace.model_name)
    for _ in range(2):
        client.create_model_version(workspace.model_name, workspace.artifact_root.as_uri(), tags={"run_id": "r"})
    client.set_registered_model_alias(workspace.model_name, "champion", "1")
    assert statuses(run_pipeline(workspace, definition)) == ["reused", "done"]  # a champion appeared
    assert statuses(run_pipeline(workspace, definition)) == ["reused", "reused"]
    client.set_registered_model_alias(workspace.model_name, "champion", "2")
    assert statuses(run_pipeline(workspace, definition)) == ["reused", "done"]  # it moved


def test_only_a_finished_step_run_is_reused(workspace):
    """A step run left FAILED or KILLED (its process died after the step's code ran) is never reused: the step
    runs again, and the run it then leaves FINISHED is the one the next pipeline run reuses."""
    client = tracking.connect(workspace)
    one = pipeline(f'  a: {{function: "{HERE}:say", params: {{outcome: "A"}}}}\n')
    first = run_pipeline(workspace, one)
    assert first.ok, first.error
    [ended] = children(client, workspace, first).values()
    client.set_terminated(ended.info.run_id, "FAILED")
    again = run_pipeline(workspace, one)
    assert again.ok, again.error
    assert [(s.name, s.status) for s in again.steps] == [("a", "done")]
    third = run_pipeline(workspace, one)
    assert [(s.name, s.status) for s in third.steps] == [("a", "reused")]


def test_a_steps_environment_holds_the_runs_credential_and_never_the_checkouts_password(monkeypatch, tmp_path):
    """However the checkout's server password reached the runner's environment (tracking.connect exports it, a
    shell may hold it under any name), a step gets only its run's user."""
    from ml_service.config import Settings
    from ml_service.team.run_user import RunCredential

    settings = Settings(root=tmp_path, state_dir=tmp_path / ".mlops", tracking_uri="http://127.0.0.1:1",
                        artifact_root=tmp_path / "a", tracking_username="admin",
                        tracking_password="admin-secret-123")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "admin-secret-123")
    monkeypatch.setenv("SOME_EXPORTED_COPY", "x:admin-secret-123")
    without = runner.step_env(settings)
    assert not [k for k, v in without.items() if "admin-secret-123" in v]
    assert "MLFLOW_TRACKING_USERNAME" not in without
    run = RunCredential("mlops-run-1-abc", "run-secret")
    env = runner.step_env(settings, run)
    assert not [k for k, v in env.items() if "admin-secret-123" in v]
    assert (env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"], env["MLOPS_RUN_USER"]) == \
        ("mlops-run-1-abc", "run-secret", "mlops-run-1-abc")


@pytest.mark.parametrize("chunk", [1, 3, 7, 1 << 20])
def test_a_step_log_keeps_no_copy_of_the_runs_password_even_across_chunks(tmp_path, chunk):
    log = tmp_path / "step.log"
    log.write_bytes(b"start secretsecret-and secre\nt but secret\n" * 3)
    runner.mask_file(log, "secret", chunk=chunk)
    assert log.read_bytes() == b"start ******-and secre\nt but ***\n" * 3
    assert not (tmp_path / "step.log.masked").exists()
