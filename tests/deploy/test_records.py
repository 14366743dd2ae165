"""Deployment records (records.py) in-process against a real MLflow store (sqlite copied from an empty one), so
that the mutation tester sees them: what is live where per model and track, a new live record replacing only its own
environment, model and track, history newest first, what `mlops deploy list` shows as current, which versions
are in use (live or the committed desired state) and so cannot be deleted, and the times as shown."""
from __future__ import annotations

import dataclasses
import json
import itertools
import time

import pytest

from ml_service.deploy import records
from ml_service.deploy.records import CANARY, DESIRED, FAILED, LIVE, REMOVED, REPLACED, STABLE, Deployment
from tests.conftest import fresh_store

pytestmark = [pytest.mark.integration]
MODEL, OTHER = "records_model", "records_other"
START = 1_700_000_000_000  # ms; each run starts one second after the previous one


@pytest.fixture
def settings(workspace, tmp_path, monkeypatch):
    """The workspace on a fresh store; run start times strictly increasing (history order is then exact)."""
    import mlflow.tracking._tracking_service.client as tracking_client

    clock = itertools.count(START, 1000)
    monkeypatch.setattr(tracking_client, "get_current_time_millis", lambda: next(clock))
    uri = fresh_store(tmp_path / "mlflow.db")
    monkeypatch.setenv("MLOPS_TRACKING_URI", uri)  # for `mlops` run in-process
    monkeypatch.delenv("MLOPS_USER", raising=False)
    return dataclasses.replace(workspace, tracking_uri=uri, user="")


def client_of(settings):
    from ml_service.workspace.tracking import connect

    return connect(settings)


def add(settings, environment, version, status, model=MODEL, track=STABLE, **more) -> Deployment:
    return records.record(settings, environment, model, version, f"img:{version}", f"http://127.0.0.1:1/{version}",
                          status, "docker", track=track, **more)


def statuses(settings, environment=None) -> list[tuple[str, str, str, str]]:
    return [(d.environment, d.model_name, d.version, d.status) for d in records.list_deployments(settings, environment)]


def test_a_record_is_a_finished_run_of_the_deployments_experiment_with_every_field(settings):
    settings = dataclasses.replace(settings, user="lead@example.com")
    made = records.record(settings, "qa", MODEL, 7, "img:7", "http://127.0.0.1:9", LIVE, "docker",
                          detail="d" * 5000, target="container-7")
    client = client_of(settings)
    experiment = client.get_experiment_by_name("mlops-deployments")
    assert experiment is not None
    run = client.get_run(made.id)
    assert run.info.experiment_id == experiment.experiment_id
    assert run.info.status == "FINISHED"
    assert run.info.run_name == f"qa: {MODEL} v7"
    tags = run.data.tags
    assert {k: tags[k] for k in ("mlops.kind", "environment", "model_name", "model_version", "image", "url",
                                 "status", "mode", "target", "track", "mlflow.user")} == {
        "mlops.kind": "deployment", "environment": "qa", "model_name": MODEL, "model_version": "7",
        "image": "img:7", "url": "http://127.0.0.1:9", "status": "live", "mode": "docker",
        "target": "container-7", "track": "stable", "mlflow.user": "lead@example.com"}
    assert tags["detail"] == "d" * 4000  # long details are cut, not refused
    assert made == Deployment(made.id, "qa", MODEL, "7", "img:7", "http://127.0.0.1:9", "live", "docker",
                              START / 1000, "d" * 4000, "container-7", "stable")
    assert made.time == 1_700_000_000.0


def test_a_failed_record_is_a_failed_run_and_a_canary_is_named_so(settings):
    plain = records.record(settings, "qa", MODEL, "2", "img:2", "", LIVE, "docker")
    assert (plain.detail, plain.target, plain.track) == ("", "", STABLE)
    failed = add(settings, "production", "3", FAILED, detail="smoke test failed")
    canary = add(settings, "production", "4", LIVE, track=CANARY)
    client = client_of(settings)
    assert client.get_run(failed.id).info.status == "FAILED"
    assert client.get_run(failed.id).data.tags["detail"] == "smoke test failed"
    assert "mlflow.user" not in client.get_run(failed.id).data.tags  # nobody known, nobody invented
    assert client.get_run(canary.id).info.run_name == f"production canary: {MODEL} v4"
    assert client.get_run(canary.id).info.status == "FINISHED"
    assert client.get_run(canary.id).data.tags["track"] == "canary"
    assert (canary.track, failed.track) == (CANARY, STABLE)


def test_the_status_and_track_names_are_the_stored_ones():
    assert (LIVE, REPLACED, FAILED, DESIRED, REMOVED) == ("live", "replaced", "failed", "desired", "removed")
    assert (STABLE, CANARY) == ("stable", "canary")
    assert records.EXPERIMENT == "mlops-deployments"
    bare = Deployment("id", "qa", MODEL, "1", "img", "url", LIVE, "docker", 1.0)
    assert (bare.detail, bare.target, bare.track) == ("", "", "stable")


def test_a_new_live_record_replaces_only_the_live_one_of_its_environment_model_and_track(settings):
    add(settings, "qa", "1", LIVE)
    add(settings, "production", "1", LIVE)
    add(settings, "qa", "5", LIVE, model=OTHER)
    add(settings, "production", "2", LIVE, track=CANARY)
    add(settings, "qa", "2", LIVE)
    assert statuses(settings) == [("qa", MODEL, "2", LIVE), ("production", MODEL, "2", LIVE),
                                  ("qa", OTHER, "5", LIVE), ("production", MODEL, "1", LIVE),
                                  ("qa", MODEL, "1", REPLACED)]
    assert [d.track for d in records.list_deployments(settings, "production")] == [CANARY, STABLE]
    # failed and desired records replace nothing
    add(settings, "qa", "3", FAILED)
    add(settings, "qa", "3", DESIRED)
    assert records.current(settings, "qa", MODEL).version == "2"
    # a removed canary ends the live canary, not the stable release
    add(settings, "production", "2", REMOVED, track=CANARY)
    assert statuses(settings, "production") == [("production", MODEL, "2", REMOVED),
                                                ("production", MODEL, "2", REPLACED),
                                                ("production", MODEL, "1", LIVE)]


def test_history_is_newest_first_of_one_environment_or_all_and_only_deployment_runs(settings):
    add(settings, "qa", "1", LIVE)
    add(settings, "production", "1", DESIRED)
    add(settings, "qa", "2", FAILED)
    client = client_of(settings)
    experiment = client.get_experiment_by_name("mlops-deployments").experiment_id
    client.create_run(experiment, tags={"environment": "qa", "status": "live"})  # not a deployment record
    assert statuses(settings, "qa") == [("qa", MODEL, "2", FAILED), ("qa", MODEL, "1", LIVE)]
    assert statuses(settings) == [("qa", MODEL, "2", FAILED), ("production", MODEL, "1", DESIRED),
                                  ("qa", MODEL, "1", LIVE)]
    times = [d.time for d in records.list_deployments(settings)]  # seconds (MLflow keeps milliseconds)
    assert times == sorted(times, reverse=True) and times[-1] == 1_700_000_000.0 and times[0] < 1_700_000_100
    assert statuses(settings, "staging") == []


def test_a_record_without_the_optional_tags_reads_as_empty_fields_on_the_stable_track(settings):
    add(settings, "qa", "1", LIVE)  # creates the experiment
    client = client_of(settings)
    experiment = client.get_experiment_by_name("mlops-deployments").experiment_id
    run = client.create_run(experiment, tags={"mlops.kind": "deployment"})
    bare = records.list_deployments(settings)[0]
    assert bare == Deployment(run.info.run_id, "", "", "", "", "", "", "", bare.time, "", "", "stable")
    client.set_tag(run.info.run_id, "track", "")
    assert records.list_deployments(settings)[0].track == "stable"


def test_current_is_the_live_deployment_of_an_environment_model_and_track(settings):
    assert records.current(settings, "qa") is None
    add(settings, "qa", "1", LIVE)
    add(settings, "qa", "8", LIVE, model=OTHER)
    add(settings, "qa", "2", FAILED)
    add(settings, "production", "3", LIVE, track=CANARY)
    assert records.current(settings, "qa", MODEL).version == "1"
    assert records.current(settings, "qa", OTHER).version == "8"
    assert records.current(settings, "qa").version == "8"  # any model: the newest live one
    assert records.current(settings, "qa", "no_model") is None
    assert records.current(settings, "production", MODEL) is None  # only a canary is live there
    assert records.current(settings, "production", MODEL, track=CANARY).version == "3"
    assert records.current(settings, "staging", MODEL) is None


def row(version, status, environment="production", model=MODEL, track=STABLE) -> Deployment:
    return Deployment(f"{environment}-{version}-{status}", environment, model, version, "img", "", status, "helm",
                      0.0, track=track)


def test_current_rows_are_the_latest_live_and_desired_per_model_environment_and_track():
    rows = [row("4", DESIRED), row("3", FAILED), row("3", LIVE), row("2", DESIRED), row("2", LIVE),
            row("9", LIVE, "qa"), row("8", LIVE, "qa"), row("5", LIVE, model=OTHER), row("6", LIVE, track=CANARY)]
    assert [(d.environment, d.model_name, d.version, d.status, d.track) for d in records.current_rows(rows)] == [
        ("production", MODEL, "4", DESIRED, STABLE), ("production", MODEL, "3", LIVE, STABLE),
        ("qa", MODEL, "9", LIVE, STABLE), ("production", OTHER, "5", LIVE, STABLE),
        ("production", MODEL, "6", LIVE, CANARY)]
    assert records.current_rows([]) == []
    assert records.current_rows([row("1", FAILED), row("1", REPLACED)]) == []


def test_a_removed_canary_shows_no_current_row_but_a_later_canary_does():
    ended = [row("6", REMOVED, track=CANARY), row("6", LIVE, track=CANARY), row("2", LIVE)]
    assert [(d.version, d.track) for d in records.current_rows(ended)] == [("2", STABLE)]
    again = [row("7", LIVE, track=CANARY), row("6", REMOVED, track=CANARY), row("6", LIVE, track=CANARY)]
    assert [(d.version, d.status) for d in records.current_rows(again)] == [("7", LIVE)]
    # a desired state committed before the removal is not current either, whatever came after it (as in
    # live_versions): the aborted canary's GitOps state was removed with it
    later = [row("7", LIVE, track=CANARY), row("6", REMOVED, track=CANARY), row("6", DESIRED, track=CANARY),
             row("2", LIVE)]
    shown = [(d.version, d.status, d.track) for d in records.current_rows(later)]
    assert shown == [("7", LIVE, CANARY), ("2", LIVE, STABLE)]


def test_live_versions_are_the_live_ones_and_the_latest_committed_desired_state(settings):
    assert records.live_versions(settings, MODEL) == {}
    add(settings, "qa", "1", LIVE)
    add(settings, "qa", "4", LIVE, model=OTHER)
    add(settings, "production", "1", DESIRED)
    assert records.live_versions(settings, MODEL) == {"1": {"qa", "production (desired state)"}}
    add(settings, "production", "2", DESIRED)  # the newer desired state replaces the older one
    add(settings, "qa", "2", LIVE)
    assert records.live_versions(settings, MODEL) == {"2": {"qa", "production (desired state)"}}
    add(settings, "production", "3", LIVE, track=CANARY)
    add(settings, "production", "3", DESIRED, track=CANARY)
    assert records.live_versions(settings, MODEL) == {
        "2": {"qa", "production (desired state)"}, "3": {"production canary", "production canary (desired state)"}}
    add(settings, "production", "3", REMOVED, track=CANARY)  # the canary was aborted: its desired state is gone
    assert records.live_versions(settings, MODEL) == {"2": {"qa", "production (desired state)"}}
    assert records.live_versions(settings, OTHER) == {"4": {"qa"}}
    add(settings, "qa", "2", FAILED)
    add(settings, "staging", "2", REPLACED)
    assert records.live_versions(settings, MODEL) == {"2": {"qa", "production (desired state)"}}


def test_a_version_live_anywhere_cannot_be_deleted_in_process(settings, capsys):
    from ml_service.cli import main

    client = client_of(settings)
    client.create_registered_model(MODEL)
    for _ in range(2):
        client.create_model_version(MODEL, "file:///nowhere/model")
    add(settings, "production", "2", DESIRED)
    assert main(["model", "delete", f"{MODEL}:2"]) == 1
    assert "production (desired state)" in capsys.readouterr().err
    assert {str(v.version) for v in client.search_model_versions(f"name='{MODEL}'")} == {"1", "2"}


def test_times_are_iso_utc_for_json_and_local_for_tables(monkeypatch):
    assert records.iso_time(93_845.0) == "1970-01-02T02:04:05Z"
    monkeypatch.setenv("TZ", "Etc/GMT-3")  # three hours east of UTC
    time.tzset()
    try:
        assert records.format_time(93_845.0) == "1970-01-02 05:04:05"
        assert records.iso_time(93_845.0) == "1970-01-02T02:04:05Z"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_every_page_of_the_history_is_read(settings, monkeypatch):
    monkeypatch.setattr(records, "PAGE_SIZE", 2)
    add(settings, "production", "1", LIVE)  # the oldest record is on the last page
    for version in ("2", "3", "4", "5"):
        add(settings, "qa", version, LIVE)
    assert [d.version for d in records.list_deployments(settings)] == ["5", "4", "3", "2", "1"]
    assert records.live_versions(settings, MODEL) == {"1": {"production"}, "5": {"qa"}}
    assert records.current(settings, "production", MODEL).version == "1"


def versions(client, name) -> set[str]:
    return {str(v.version) for v in client.search_model_versions(f"name='{name}'")}


def test_a_version_live_in_an_environment_cannot_be_deleted(settings, capsys):
    """Issue 19's promise, on effects: a version live in QA (holding no alias) is refused, a version nothing serves is
    deleted, a replaced one becomes deletable, and a desired production state keeps its version."""
    from ml_service.cli import main

    client = client_of(settings)
    client.create_registered_model(MODEL)
    for _ in range(3):
        client.create_model_version(MODEL, "file:///nowhere/model")
    records.record(settings, "qa", MODEL, "2", "mlops/img:2", "http://127.0.0.1:1", LIVE, "docker")
    assert main(["model", "delete", f"{MODEL}:2"]) == 1  # live in QA, holds no alias
    assert "qa" in capsys.readouterr().err
    assert "2" in versions(client, MODEL)
    assert main(["model", "delete", f"{MODEL}:1"]) == 0  # nothing serves it
    assert versions(client, MODEL) == {"2", "3"}
    records.record(settings, "qa", MODEL, "3", "mlops/img:3", "http://127.0.0.1:1", LIVE, "docker")
    assert records.live_versions(settings, MODEL) == {"3": {"qa"}}  # version 2 was replaced
    assert main(["model", "delete", f"{MODEL}:2"]) == 0 and versions(client, MODEL) == {"3"}
    records.record(settings, "production", MODEL, "3", "mlops/img:3", "", DESIRED, "gitops")
    records.record(settings, "qa", MODEL, "3", "mlops/img:3", "", FAILED, "docker")
    assert records.live_versions(settings, MODEL) == {"3": {"qa", "production (desired state)"}}
    assert main(["model", "delete", f"{MODEL}:3"]) == 1 and versions(client, MODEL) == {"3"}


def table_rows(text: str) -> list[tuple[str, str, str]]:
    """(model, environment label, version) of each row of `mlops deploy list`'s table, cut at its header's columns."""
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("MODEL"))
    env_at, version_end = lines[header].index("ENVIRONMENT"), lines[header].index("VERSION") + len("VERSION")
    return [(line[:env_at].strip(), line[env_at:version_end - 7].strip(), line[version_end - 7:version_end].strip())
            for line in lines[header + 1:] if line.strip()]


def test_deploy_list_labels_only_the_canary_rows_canary(settings, capsys):
    """The table's environment column says `canary` for exactly the rows whose deployment is on the canary track
    (cli/deploy.py): the stable release of one model and the canary beside it, and another model's stable one."""
    from ml_service.cli import main

    def helm(version, status, model=MODEL, track=STABLE):  # a helm release: no container to check
        records.record(settings, "production", model, version, f"img:{version}", "", status, "helm", track=track)

    helm("1", LIVE)
    helm("2", LIVE, track=CANARY)
    helm("5", DESIRED, model=OTHER)
    assert main(["deploy", "list"]) == 0
    shown = sorted(table_rows(capsys.readouterr().out))
    tracks = {(d.model_name, d.version): d.track for d in records.current_rows(records.list_deployments(settings))}
    assert tracks == {(MODEL, "1"): STABLE, (MODEL, "2"): CANARY, (OTHER, "5"): STABLE}
    assert shown == sorted([(MODEL, "production", "1"), (MODEL, "production canary", "2"),
                            (OTHER, "production", "5")])
    assert main(["deploy", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted((r["model"], r["version"], r["track"]) for r in listed) == \
        sorted((model, version, track) for (model, version), track in tracks.items())


def test_deploy_list_shows_what_is_current_and_with_all_every_record(settings, capsys):
    from ml_service.cli import main

    for version in ("1", "2"):
        records.record(settings, "production", MODEL, version, f"img:{version}", "", LIVE, "helm")
    capsys.readouterr()
    assert main(["deploy", "list", "--json"]) == 0
    assert [(r["version"], r["status"]) for r in json.loads(capsys.readouterr().out)] == [("2", "live")]
    assert main(["deploy", "list", "--all", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["version"], r["status"]) for r in listed] == [("2", "live"), ("1", "replaced")]
