"""`mlops deploy status production` (prod_status.py) in-process: desired against observed, both tracks.

In GitOps mode desired is the GitOps target's last commit (stable and canary, with the canary's weight) and
nothing is observed; on a cluster (the FAKE API server of tests/support/fakes) desired is what the deploy records
say mlops applied and observed is `helm get values` of the stable and the canary release. In sync only when
both tracks agree: issue 29 lists "the canary track ignored in a status", a status that called a cluster in sync
while its canary ran another version than the records say, or ran when none should.
"""
from __future__ import annotations

import json

import pytest

from ml_service.deploy import prod_status, production, records
from tests.deploy import test_canary as canary_tests
from tests.deploy import test_production as production_tests

pytestmark = pytest.mark.integration
project, client, fake_cluster = production_tests.project, production_tests.client, production_tests.fake_cluster
routed = canary_tests.routed  # the project with the production route, versions 1 to 3
NAME, OTHER = production_tests.NAME, "another_model"


def status(settings):
    [row] = prod_status.production_status(settings, [NAME])
    return row


def test_gitops_status_is_the_committed_state_of_both_tracks_and_unknown_observed(routed):
    from ml_service.deploy import canary

    assert status(routed)["desired"] is None
    production.deploy_prod(routed, f"{NAME}:1")
    canary.start_canary(routed, f"{NAME}:2", 15)
    row = status(routed)
    assert (row["mode"], row["observed"], row["in_sync"]) == ("gitops", None, None)
    desired = row["desired"]
    assert desired["stable"] == {"version": "1", "image": f"mlops/{NAME}:1"}
    assert desired["canary"] == {"version": "2", "image": f"mlops/{NAME}:2"}
    assert desired["canary_weight"] == 15 and desired["source"] == "GitOps target"
    assert desired["commit"] == canary_tests.head(routed)
    assert [(r["track"], r["version"], r["status"]) for r in row["records"]] == [
        ("canary", "2", "desired"), ("stable", "1", "desired")]
    text = prod_status.render([row])
    assert f"stable version 1 (mlops/{NAME}:1), canary version 2 at 15% (mlops/{NAME}:2)" in text
    canary.promote(routed, NAME)
    desired = status(routed)["desired"]
    assert desired["stable"]["version"] == "2" and desired["canary"] is None and desired["canary_weight"] == 0
    assert [(r["track"], r["version"]) for r in status(routed)["records"]] == [("stable", "2")]


def apply(settings, release, values):
    from ml_service.deploy import cluster

    cluster.apply(settings, release, production.values_text(values, release), None)


def canary_values(settings, version):
    return {**production.desired_values(settings, NAME, version), "canary": {"enabled": True}}


def test_a_cluster_is_in_sync_only_when_both_tracks_are_what_the_records_say(routed, fake_cluster):
    from ml_service.deploy import canary, cluster

    canary_release = production.canary_release(routed, NAME)
    production.deploy_prod(routed, f"{NAME}:1", smoke_timeout=None)
    row = status(routed)
    assert row["mode"] == "helm" and row["in_sync"] is True and row["observed"]["canary"] is None
    canary.start_canary(routed, f"{NAME}:2", 20, smoke_timeout=None)
    row = status(routed)
    assert row["in_sync"] is True
    assert row["desired"]["canary"] == row["observed"]["canary"] == {"version": "2", "image": f"mlops/{NAME}:2"}
    assert row["observed"]["canary_weight"] == 20 and row["desired"]["canary_weight"] is None

    apply(routed, canary_release, canary_values(routed, "3"))  # someone ran helm by hand: another canary
    row = status(routed)
    assert row["observed"]["canary"]["version"] == "3" and row["desired"]["canary"]["version"] == "2"
    assert row["in_sync"] is False
    cluster.uninstall(canary_release)  # the canary the records call live is gone
    row = status(routed)
    assert row["observed"]["canary"] is None and row["observed"]["canary_weight"] == 0
    assert row["in_sync"] is False


def test_a_canary_the_records_do_not_know_is_out_of_sync(routed, fake_cluster):
    stable, canary_release = production.release_name(routed, NAME), production.canary_release(routed, NAME)
    production.deploy_prod(routed, f"{NAME}:1", smoke_timeout=None)
    apply(routed, canary_release, canary_values(routed, "2"))
    apply(routed, stable, {**production.desired_values(routed, NAME, "1"), "route": canary_tests.ROUTE,
                           "canary": {"weight": 30}})
    row = status(routed)
    assert row["desired"]["canary"] is None and row["observed"]["canary"]["version"] == "2"
    assert row["observed"]["canary_weight"] == 30 and row["in_sync"] is False
    assert "OUT OF SYNC" in prod_status.render([row])


def test_a_cluster_without_the_release_is_out_of_sync_and_says_so(routed, fake_cluster):
    records.record(routed, "production", NAME, "1", f"mlops/{NAME}:1", "", records.LIVE, "helm")
    row = status(routed)
    assert row["observed"] is None and row["in_sync"] is False
    assert row["observed_detail"] == "the cluster has no release of it"


def test_the_status_of_a_model_holds_only_its_own_records(routed):
    records.record(routed, "production", OTHER, "7", "mlops/other:7", "", records.DESIRED, "gitops")
    records.record(routed, "qa", NAME, "1", "mlops/m:1", "http://127.0.0.1:1", records.LIVE, "docker")
    production.deploy_prod(routed, f"{NAME}:1")
    row = status(routed)
    assert [(r["track"], r["version"], r["status"]) for r in row["records"]] == [("stable", "1", "desired")]
    assert prod_status.production_status(routed, [OTHER])[0]["desired"] is None  # nothing committed for it


def test_deploy_status_and_list_show_the_canary_track(routed, capsys):
    from ml_service.cli import main
    from ml_service.deploy import canary

    production.deploy_prod(routed, f"{NAME}:1")
    canary.start_canary(routed, f"{NAME}:2", 25)
    capsys.readouterr()
    assert main(["deploy", "status", "production", "--model", NAME, "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["desired"]["canary"]["version"] == "2" and row["desired"]["canary_weight"] == 25
    assert main(["deploy", "list", "--json"]) == 0
    listed = [(d["environment"], d["track"], d["version"], d["status"]) for d in json.loads(capsys.readouterr().out)]
    assert listed == [("production", "canary", "2", "desired"), ("production", "stable", "1", "desired")]


def test_deploy_status_takes_the_model_projects_name_for_its_registered_model(routed, capsys):
    """`--model` names the registered model or its project (the folder): both give the same row."""
    from ml_service.cli import main

    project_name = next(m.project for m in routed.models if m.name == NAME)
    assert project_name != NAME
    production.deploy_prod(routed, f"{NAME}:1")
    capsys.readouterr()
    rows = []
    for given in (NAME, project_name):
        assert main(["deploy", "status", "production", "--model", given, "--json"]) == 0
        rows += json.loads(capsys.readouterr().out)
    assert [r["model"] for r in rows] == [NAME, NAME]
    assert rows[1]["desired"] == rows[0]["desired"] and rows[1]["desired"]["stable"]["version"] == "1"


def test_deploy_status_without_a_model_shows_every_model_of_mlops_yml(routed, capsys):
    import yaml

    from ml_service.cli import main

    (routed.root / "mlops.yml").write_text(yaml.safe_dump({
        "models": [{"project": "proj", "name": NAME}, {"project": "other", "name": OTHER}],
        "environments": {"production": {"values": {"route": canary_tests.ROUTE}}}}))
    production.deploy_prod(routed, f"{NAME}:1")
    capsys.readouterr()
    assert main(["deploy", "status", "production", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["model"], (r["desired"] or {}).get("stable", {}).get("version")) for r in rows] == \
        [(NAME, "1"), (OTHER, None)]
