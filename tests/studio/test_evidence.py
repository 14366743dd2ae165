"""What an approver sees before deciding (evidence.py), gathered from a real MLflow sqlite store: the candidate's
and the champion's metric and the decision come from the step that compared them (the evaluate step), not from
whichever step ran last; the steps of a pipeline run still running are read again on the next look (only an ended
run's are kept)."""
from __future__ import annotations

import pytest

from ml_service.ci.server.store import Store
from ml_service.pipelines.runner import OUTCOME_TAG
from ml_service.studio import evidence
from ml_service.sections import environments_from
from tests.conftest import fresh_store

pytestmark = pytest.mark.integration
MODEL = "evidence_model"


@pytest.fixture
def store_and_client(workspace, tmp_path):
    import dataclasses

    import mlflow

    uri = fresh_store(tmp_path / "mlflow.db")
    settings = dataclasses.replace(workspace, tracking_uri=uri, environments=environments_from({
        "production": {"approval": {"approvers": ["alice@example.com"], "allow_self_approval": False}}}))
    client = mlflow.MlflowClient(uri, uri)
    return settings, Store(tmp_path / "ci"), client


def pipeline(client, experiment):
    """A pipeline run (the parent MLflow run) with its steps added by `step`."""
    parent = client.create_run(experiment, tags={"mlops.kind": "pipeline", "mlops.pipeline.name": "training"})
    return parent.info.run_id


def step(client, experiment, parent, name, start, metrics=None, outcome=""):
    run = client.create_run(experiment, start_time=start, tags={"mlflow.parentRunId": parent, "mlops.step.name": name,
                                                                OUTCOME_TAG: outcome})
    for key, value in (metrics or {}).items():
        client.log_metric(run.info.run_id, key, value)
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def waiting_release(store, ref):
    run_id = store.create_run("release", "release.yml", "Manual", "main", "a" * 40, "dev@example.com",
                              {"model": ref}, "/nowhere")
    store.request_approval(run_id, "Production", "Deploy", "production", 3600)
    return store.approvals(run_id)[0]


def test_the_numbers_and_the_decision_are_the_evaluate_steps(store_and_client):
    settings, store, client = store_and_client
    experiment = client.create_experiment("evidence", artifact_location=str(settings.state_dir / "artifacts"))
    parent = pipeline(client, experiment)
    step(client, experiment, parent, "train", 1000, {"mse": 99.0}, "trained")
    step(client, experiment, parent, "evaluate", 2000, {"candidate_mse": 2871.5, "champion_mse": 3012.25},
         "registered: candidate mse 2871.5 vs champion v3 3012.25")
    step(client, experiment, parent, "register", 3000, {"mse": 2871.5}, "registered version 4")  # ran last
    client.set_terminated(parent, "FINISHED")
    client.create_registered_model(MODEL)
    tags = {"metric": "mse", "mse": "2871.5", "pipeline_run_id": parent, "drift_psi": "0.1"}
    client.create_model_version(MODEL, "file:///nowhere", tags=tags)
    approval = waiting_release(store, f"{MODEL}:1")
    found = evidence.gather(settings, store, approval, client)
    assert (found.model_name, found.version, found.metric) == (MODEL, "1", "mse")
    assert (found.candidate, found.champion, found.champion_version) == (2871.5, 3012.25, "3")
    assert found.decision == "registered: candidate mse 2871.5 vs champion v3 3012.25"
    assert found.drift == {"drift_psi": "0.1"} and found.pipeline_run_id == parent
    assert found.approvers == ["alice@example.com"] and found.self_approval is False and not found.problems


def test_a_running_pipelines_steps_are_read_again(store_and_client):
    settings, store, client = store_and_client
    experiment = client.create_experiment("evidence-live", artifact_location=str(settings.state_dir / "artifacts"))
    parent = pipeline(client, experiment)
    step(client, experiment, parent, "train", 1000, {"mse": 5.0}, "trained")
    client.create_registered_model(MODEL)
    tags = {"metric": "mse", "mse": "5.0", "pipeline_run_id": parent}
    client.create_model_version(MODEL, "file:///nowhere", tags=tags)
    approval = waiting_release(store, f"{MODEL}:1")
    early = evidence.gather(settings, store, approval, client)
    assert early.candidate == 5.0 and early.champion is None  # the registered metric, said so
    assert any("no evaluate step" in p for p in early.problems)
    step(client, experiment, parent, "evaluate", 2000, {"candidate_mse": 5.0, "champion_mse": 6.0}, "better")
    client.set_terminated(parent, "FINISHED")
    later = evidence.gather(settings, store, approval, client)
    assert (later.candidate, later.champion, later.decision) == (5.0, 6.0, "better") and not later.problems


class Counting:
    """The real MLflow client, counting the runs read by id (a pipeline run's steps start with its get_run)."""

    def __init__(self, client):
        self.client, self.reads = client, []

    def get_run(self, run_id):
        self.reads.append(run_id)
        return self.client.get_run(run_id)

    def __getattr__(self, name):
        return getattr(self.client, name)


def test_an_ended_pipelines_steps_are_read_from_mlflow_once(store_and_client):
    settings, store, client = store_and_client
    experiment = client.create_experiment("evidence-ended", artifact_location=str(settings.state_dir / "artifacts"))
    parent = pipeline(client, experiment)
    step(client, experiment, parent, "evaluate", 1000, {"candidate_mse": 4.0, "champion_mse": 6.0}, "better")
    client.set_terminated(parent, "FINISHED")
    client.create_registered_model(f"{MODEL}_ended")
    client.create_model_version(f"{MODEL}_ended", "file:///nowhere", tags={"metric": "mse", "pipeline_run_id": parent})
    approval = waiting_release(store, f"{MODEL}_ended:1")
    counting = Counting(client)
    first = evidence.gather(settings, store, approval, counting)
    assert (first.candidate, first.champion, first.decision) == (4.0, 6.0, "better")
    assert counting.reads.count(parent) >= 1
    counting.reads.clear()
    again = evidence.gather(settings, store, approval, counting)
    assert (again.candidate, again.champion, again.decision) == (4.0, 6.0, "better")
    assert parent not in counting.reads  # every approvals page would read the ended run's steps again


def test_a_release_that_names_no_version_says_so(store_and_client):
    settings, store, client = store_and_client
    run_id = store.create_run("release", "release.yml", "Manual", "main", "a" * 40, "dev", {}, "/nowhere")
    store.request_approval(run_id, "Production", "Deploy", "production", 3600)
    found = evidence.gather(settings, store, store.approvals(run_id)[0], client)
    assert found.ref == "" and found.problems == ["the run does not say which model version it releases"]
    missing = evidence.gather(settings, store, waiting_release(store, f"{MODEL}:9"), client)
    assert missing.problems and "is not in the registry" in missing.problems[0]
    for ref in ("models:/m@champion", f"{MODEL}:x"):  # no version, no reference: never asked of MLflow
        unclear = evidence.gather(settings, store, waiting_release(store, ref), client)
        assert unclear.version == "" and ref in unclear.problems[0] and unclear.metric == ""


def test_the_smoke_evidence_is_the_smoke_steps_not_a_stage_or_job_named_smoke(store_and_client):
    """A job `Deploy and smoke test QA` succeeds as a whole whatever its smoke step did: the approver is shown the
    step's own result."""
    settings, store, client = store_and_client
    approval = waiting_release(store, f"{MODEL}:1")
    run_id = approval["run_id"]
    store.set_record(run_id, "QA", "stage", name="QA", display="QA", status="completed", result="Succeeded")
    store.set_record(run_id, "QA/Deploy", "job", name="Deploy", display="Deploy and smoke test QA",
                     status="completed", result="Succeeded")
    store.set_record(run_id, "QA/Deploy/smoke", "step", name="smoke", display="Smoke test QA", status="completed",
                     result="Failed")
    store.set_record(run_id, "QA/Deploy/build", "step", name="build", display="Build the image", status="completed",
                     result="Succeeded")
    found = evidence.gather(settings, store, approval, None)
    assert [(r["kind"], r["display"], r["result"]) for r in found.smoke] == [("step", "Smoke test QA", "Failed")]
