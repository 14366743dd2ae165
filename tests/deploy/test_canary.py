"""Canary, promote, abort (canary.py) and `deploy status production`: GitOps mode for real (the real kubectl
finds no cluster; each step is a commit of a real git repository, its manifests rendered by the real helm and
validated offline, the HTTPRoute against the Gateway API CRD), and cluster mode against the FAKE
Kubernetes API server of tests/support/fakes (only what needs an API server is faked; the smoke
tests are real HTTP to the real scoring service).

The canary needs the production route, configured in mlops.yml. The last tests (marked slow) run the CLI (its
entry point in-process, tests/support/cli.py; one call as a subprocess) with a project root whose mlops.yml adds
`environments.production.values.route` and its own GitOps repository (every other file is a link to this
checkout). The in-process tests before them call canary.py on the
project of test_production.py (a copy of the chart, a real MLflow store, the real helm, real git), so that the
mutation tester sees it: the traffic split each step commits or applies, and the one rule users rely on most,
that the `production` alias moves only when a cluster really runs the version (never in GitOps mode).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ml_service.config import load_settings
from ml_service.deploy import production
from tests.conftest import ROOT, workspace_env
from tests.deploy import test_production as production_tests
from tests.support.cli import run_cli as cli

pytestmark = pytest.mark.integration
FAKES = ROOT / "tests" / "support" / "fakes"
CHART = ROOT / "charts" / "scoring"
KEY = "fake-cluster-scoring-key-0123456789"
ROUTE = {"enabled": True, "parentRefs": [{"name": "ml-gateway"}], "hostnames": ["scoring.example.com"]}


def mlops(*args, env):
    return subprocess.run([sys.executable, "-m", "ml_service.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **env}, timeout=600)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A workspace with versions 1, 2 and 3 of the default model (1 trained by the pipeline, 2 and 3 its files)."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in workspace_env(tmp_path_factory.mktemp("canary")).items():
            patch.setenv(key, value)
        for key in ("MLOPS_TRACKING_URI", "MLOPS_MODEL", "MLOPS_MODEL_NAME", "MLOPS_IMAGE_REGISTRY"):
            patch.delenv(key, raising=False)
        settings = load_settings()
        run = mlops("pipeline", "run", env={})
        assert "version 1" in run.stdout, run.stderr
        from ml_service.workspace.tracking import connect

        client = connect(settings)
        source = client.get_model_version(settings.model_name, "1").source
        for _ in range(2):
            client.create_model_version(settings.model_name, source)
        yield settings


def project_root(base, route=True):
    """A project root: this checkout's files, with an mlops.yml whose production has the route (or not) and a
    GitOps repository of its own."""
    root = base / "root"
    root.mkdir(parents=True)
    for entry in ROOT.iterdir():
        if entry.name != "mlops.yml":
            (root / entry.name).symlink_to(entry)
    config = yaml.safe_load((ROOT / "mlops.yml").read_text())
    production = config["environments"]["production"]
    production["gitops"] = {**production.get("gitops", {}), "repo": str(base / "gitops"), "branch": ""}
    if route:
        production["values"] = {"route": ROUTE}
    (root / "mlops.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


@pytest.fixture()
def gitops_env(tmp_path):
    """GitOps mode: a kubeconfig naming a cluster that does not answer (the real kubectl fails), a routed root."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "none",
        "clusters": [{"name": "none", "cluster": {"server": "https://127.0.0.1:1"}}],
        "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}],
        "users": [{"name": "none", "user": {"token": "none"}}]}))
    return {"KUBECONFIG": str(kubeconfig), "MLOPS_ROOT": str(project_root(tmp_path)),
            "MLOPS_USER": "releaser@example.com"}


def target(ws, tmp_path):
    return tmp_path / "gitops" / "production" / ws.model_name


def committed(tmp_path, path="HEAD"):
    done = subprocess.run(["git", "-C", str(tmp_path / "gitops"), "show", path], capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else None


def route_weights(objects):
    routes = [o for o in objects if o["kind"] == "HTTPRoute"]
    assert len(routes) == 1
    return [(b["name"], b["weight"]) for b in routes[0]["spec"]["rules"][0]["backendRefs"]]


def manifests(ws, tmp_path):
    """The committed manifests.yaml, every object validated offline (core kinds and the HTTPRoute's CRD)."""
    from ml_service.deploy import chart

    rel = f"production/{ws.model_name}/manifests.yaml"
    objects = [o for o in yaml.safe_load_all(committed(tmp_path, f"HEAD:{rel}")) if o]
    chart.validate_objects(CHART, objects, "1.37")
    return objects


def release(ws):
    from ml_service.deploy.production import release_name

    return release_name(ws, ws.model_name)


def status(env, ws):
    done = cli("deploy", "status", "production", "--model", ws.model_name, "--json", env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)[0]


# --- in-process: canary.py as the mutation tester sees it (first: quick to fail) -------------------------------

# test_production.py's project, store and FAKE cluster
project, client, fake_cluster = production_tests.project, production_tests.client, production_tests.fake_cluster
NAME = production_tests.NAME


@pytest.fixture
def routed(project, client):
    """test_production.py's project with the production route in mlops.yml, versions 1, 2 and 3 registered."""
    (project.root / "mlops.yml").write_text(yaml.safe_dump({
        "models": [{"project": "proj", "name": NAME}],
        "environments": {"production": {"values": {"route": ROUTE}}}}))
    client.create_model_version(NAME, "file:///nowhere/model")
    return load_settings()


def alias_of(client):
    return {a: str(v) for a, v in client.get_registered_model(NAME).aliases.items()}.get("production")


def head(settings):
    return production_tests.git(settings.state_dir / "gitops", "rev-parse", "HEAD")


def committed_state(settings):
    """(stable values, canary values or None, route weights) at the GitOps target's HEAD, every object valid."""
    from ml_service.deploy import chart

    repo, folder = settings.state_dir / "gitops", f"production/{NAME}"

    def show(name):
        done = subprocess.run(["git", "-C", str(repo), "show", f"HEAD:{folder}/{name}"], capture_output=True, text=True)
        return yaml.safe_load(done.stdout) if done.returncode == 0 else None

    objects = [o for o in yaml.safe_load_all(production_tests.git(repo, "show", f"HEAD:{folder}/manifests.yaml")) if o]
    chart.validate_objects(settings.root / "charts" / "scoring", objects, "1.37")
    return show("values-prod.yaml"), show("values-canary.yaml"), route_weights(objects)


def track_rows(settings):
    from ml_service.deploy import records

    return [(d.track, d.version, d.status) for d in records.list_deployments(settings, "production")]


def test_a_gitops_canary_commits_the_split_and_promote_moves_the_state_but_never_the_alias(routed, client):
    """Issue 29: `mlops deploy promote` in GitOps mode moved the `production` alias while printing that it did not
    (its test read the printed phrase). The alias is checked here, with one already set, so a move shows."""
    from ml_service.deploy import canary, records

    stable, canary_release = production.release_name(routed, NAME), production.canary_release(routed, NAME)
    production.deploy_prod(routed, f"{NAME}:1")
    client.set_registered_model_alias(NAME, "production", "1")  # as a cluster deploy of version 1 would have
    started = canary.start_canary(routed, f"{NAME}:2", 10, who="lead@example.com")
    assert (started.mode, started.applied, started.commit) == ("gitops", False, head(routed))
    values, canary_values, weights = committed_state(routed)
    assert values["model"]["version"] == "1" and values["canary"] == {"weight": 10, "service": canary_release}
    assert canary_values["model"]["version"] == "2" and canary_values["canary"] == {"enabled": True}
    assert weights == [(stable, 90), (canary_release, 10)]
    assert track_rows(routed)[0] == ("canary", "2", records.DESIRED)
    assert alias_of(client) == "1"

    promoted = canary.promote(routed, NAME, who="lead@example.com")
    assert (promoted.mode, promoted.applied, promoted.commit) == ("gitops", False, head(routed))
    values, canary_values, weights = committed_state(routed)
    assert values["model"]["version"] == "2" and "canary" not in values and values["route"] == ROUTE
    assert canary_values is None and weights == [(stable, 100)]
    assert track_rows(routed)[:2] == [("canary", "2", records.REMOVED), ("stable", "2", records.DESIRED)]
    assert alias_of(client) == "1"  # nothing was applied: the alias stays where a cluster last served
    assert records.live_versions(routed, NAME) == {"2": {"production (desired state)"}}


def test_a_gitops_abort_sends_all_traffic_back_and_moves_no_alias(routed, client):
    from ml_service.deploy import canary, records

    stable = production.release_name(routed, NAME)
    production.deploy_prod(routed, f"{NAME}:1")
    canary.start_canary(routed, f"{NAME}:3", 50)
    assert committed_state(routed)[2] == [(stable, 50), (f"{stable}-canary", 50)]
    assert "production canary (desired state)" in records.live_versions(routed, NAME)["3"]
    aborted = canary.abort(routed, NAME)
    assert (aborted.mode, aborted.applied) == ("gitops", False)
    values, canary_values, weights = committed_state(routed)
    assert values["model"]["version"] == "1" and "canary" not in values
    assert canary_values is None and weights == [(stable, 100)]
    assert track_rows(routed)[0] == ("canary", "3", records.REMOVED)
    assert records.live_versions(routed, NAME) == {"1": {"production (desired state)"}}
    assert alias_of(client) is None
    with pytest.raises(canary.CanaryError, match="no canary"):
        canary.abort(routed, NAME)


@pytest.mark.parametrize("percent", [1, 100])
def test_a_canary_takes_every_percent_from_1_to_100(routed, percent):
    from ml_service.deploy import canary

    stable = production.release_name(routed, NAME)
    production.deploy_prod(routed, f"{NAME}:1")
    canary.start_canary(routed, f"{NAME}:2", percent)
    values, _, weights = committed_state(routed)
    assert values["canary"]["weight"] == percent
    assert weights == [(stable, 100 - percent), (f"{stable}-canary", percent)]


@pytest.mark.parametrize("percent", [0, 101, -5])
def test_a_canary_outside_1_to_100_percent_is_refused_and_commits_nothing(routed, percent):
    from ml_service.deploy import canary

    production.deploy_prod(routed, f"{NAME}:1")
    before, rows = head(routed), track_rows(routed)
    with pytest.raises(canary.CanaryError, match=f"--canary {percent}: "):
        canary.start_canary(routed, f"{NAME}:2", percent)
    assert head(routed) == before and track_rows(routed) == rows


@settings(max_examples=60, deadline=None)
@given(st.integers(-1000, 1000))
@example(0)
@example(1)
@example(100)
@example(101)
def test_the_canary_option_takes_a_whole_percent_from_1_to_100(value):
    """Both sides of each bound always (cli/deploy.py percent): the random draw need not reach 0, 1, 100 or 101."""
    import argparse

    from ml_service.cli.deploy import percent

    if 1 <= value <= 100:
        assert percent(str(value)) == value
    else:
        with pytest.raises(argparse.ArgumentTypeError):
            percent(str(value))


def test_the_same_canary_again_changes_only_its_weight_and_refusals_commit_nothing(routed):
    from ml_service.deploy import canary

    production.deploy_prod(routed, f"{NAME}:1")
    canary.start_canary(routed, f"{NAME}:2", 10)
    _, first_canary, _ = committed_state(routed)
    canary.start_canary(routed, f"{NAME}:2", 30)
    values, canary_values, _ = committed_state(routed)
    assert values["canary"]["weight"] == 30 and canary_values == first_canary
    before = head(routed)
    for ref, why in ((f"{NAME}:3", "runs already"), (f"{NAME}:1", "is the stable release already")):
        with pytest.raises(canary.CanaryError, match=why):
            canary.start_canary(routed, ref, 20)
    with pytest.raises(production.DeployError, match="takes 30% of production"):
        production.deploy_prod(routed, f"{NAME}:3")
    assert head(routed) == before


def test_a_canary_needs_a_stable_release_and_a_route(project, client):
    from ml_service.deploy import canary

    with pytest.raises(canary.CanaryError, match="no stable release"):
        canary.start_canary(project, f"{NAME}:2", 10)
    production.deploy_prod(project, f"{NAME}:1")  # project has no route in mlops.yml
    before = head(project)
    with pytest.raises(canary.CanaryError, match="environments.production.values.route"):
        canary.start_canary(project, f"{NAME}:2", 10)
    assert head(project) == before and track_rows(project) == [("stable", "1", "desired")]


def fake_releases(settings):
    """The FAKE API server's releases: name -> its newest revision's values."""
    folder = settings.state_dir.parent / "cluster" / "releases"
    return {p.stem: json.loads(p.read_text())[-1]["values"] for p in folder.glob("*.json")}


def test_on_a_cluster_promote_moves_the_alias_and_removes_the_canary_release(routed, client, fake_cluster):
    from ml_service.deploy import canary, records

    stable, canary_release = production.release_name(routed, NAME), production.canary_release(routed, NAME)
    production.deploy_prod(routed, f"{NAME}:1", smoke_timeout=None)
    assert alias_of(client) == "1"
    started = canary.start_canary(routed, f"{NAME}:2", 20, smoke_timeout=None)
    assert (started.mode, started.applied) == ("helm", True)
    releases = fake_releases(routed)
    assert releases[stable]["model"]["version"] == "1"
    assert releases[stable]["canary"] == {"weight": 20, "service": canary_release}
    assert releases[canary_release]["model"]["version"] == "2"
    assert alias_of(client) == "1"  # a canary is not production's version
    assert records.current(routed, "production", NAME, track=records.CANARY).version == "2"

    promoted = canary.promote(routed, NAME, smoke_timeout=None)
    assert (promoted.mode, promoted.applied) == ("helm", True)
    releases = fake_releases(routed)
    assert set(releases) == {stable} and releases[stable]["model"]["version"] == "2"
    assert "canary" not in releases[stable]
    assert alias_of(client) == "2"
    assert records.current(routed, "production", NAME).version == "2"
    assert records.current(routed, "production", NAME, track=records.CANARY) is None


def test_on_a_cluster_abort_uninstalls_the_canary_and_keeps_the_alias(routed, client, fake_cluster):
    from ml_service.deploy import canary, records

    stable = production.release_name(routed, NAME)
    production.deploy_prod(routed, f"{NAME}:1", smoke_timeout=None)
    canary.start_canary(routed, f"{NAME}:3", 40, smoke_timeout=None)
    canary.abort(routed, NAME)
    releases = fake_releases(routed)
    assert set(releases) == {stable} and releases[stable]["model"]["version"] == "1"
    assert "canary" not in releases[stable]
    stable_manifest = json.loads((routed.state_dir.parent / "cluster" / "releases" / f"{stable}.json").read_text())
    assert route_weights([o for o in yaml.safe_load_all(stable_manifest[-1]["manifest"]) if o]) == [(stable, 100)]
    assert alias_of(client) == "1"
    assert records.current(routed, "production", NAME, track=records.CANARY) is None
    assert track_rows(routed)[0] == ("canary", "3", records.REMOVED)


def test_a_canary_whose_stable_upgrade_fails_leaves_no_canary_release_behind(routed, client, fake_cluster,
                                                                             monkeypatch):
    from ml_service.deploy import canary, records

    stable, canary_release = production.release_name(routed, NAME), production.canary_release(routed, NAME)
    production.deploy_prod(routed, f"{NAME}:1", smoke_timeout=None)
    monkeypatch.setenv("FAKE_HELM_FAIL", f"upgrade:{stable}")  # the canary installs, the route's upgrade fails
    with pytest.raises(production.DeployError, match="helm upgrade failed"):
        canary.start_canary(routed, f"{NAME}:2", 20, smoke_timeout=None)
    assert f"helm upgrade --install {canary_release} " in fake_cluster.read_text()
    releases = fake_releases(routed)
    assert set(releases) == {stable} and "canary" not in releases[stable]  # the canary it installed is gone
    assert track_rows(routed)[0] == ("canary", "2", records.FAILED)
    assert alias_of(client) == "1"


def test_a_promote_whose_upgrade_fails_keeps_the_canary_and_the_alias(routed, client, fake_cluster, monkeypatch):
    from ml_service.deploy import canary, records

    stable, canary_release = production.release_name(routed, NAME), production.canary_release(routed, NAME)
    production.deploy_prod(routed, f"{NAME}:1", smoke_timeout=None)
    canary.start_canary(routed, f"{NAME}:2", 20, smoke_timeout=None)
    before = fake_releases(routed)
    monkeypatch.setenv("FAKE_HELM_FAIL", f"upgrade:{stable}")
    with pytest.raises(production.DeployError, match="helm upgrade failed"):
        canary.promote(routed, NAME, smoke_timeout=None)
    assert fake_releases(routed) == before and canary_release in before
    assert alias_of(client) == "1"
    assert records.current(routed, "production", NAME).version == "1"
    assert records.current(routed, "production", NAME, track=records.CANARY).version == "2"
    assert track_rows(routed)[0] == ("stable", "2", records.FAILED)


# --- `mlops` as a subprocess (slow) -----------------------------------------------------------------------------

@pytest.mark.slow
def test_canary_promote_and_abort_in_gitops_mode_are_commits_that_split_then_move_the_traffic(ws, gitops_env, tmp_path):
    """The `mlops deploy` commands' wiring in GitOps mode, one flow: a canary refused without a stable release or
    outside 1..100%, then canary, status, promote, list, canary again and abort, each a commit (every case of what
    each step commits is in canary.py's in-process tests above; the route check too)."""
    name, stable = ws.model_name, release(ws)
    first = mlops("deploy", "prod", "--model", f"{name}:2", "--canary", "10", env=gitops_env)  # `python -m` itself
    assert first.returncode == 2 and "no stable release" in first.stderr and "Traceback" not in first.stderr
    bad = cli("deploy", "prod", "--model", f"{name}:2", "--canary", "150", env=gitops_env)
    assert bad.returncode == 2 and "not a percent from 1 to 100" in bad.stderr
    assert committed(tmp_path, "HEAD") is None  # neither committed anything
    assert cli("deploy", "prod", "--model", f"{name}:1", env=gitops_env).returncode == 0
    assert route_weights(manifests(ws, tmp_path)) == [(stable, 100)]

    started = cli("deploy", "prod", "--model", f"{name}:2", "--canary", "10", env=gitops_env)
    assert started.returncode == 0, started.stderr
    assert "canary version 2 at 10%" in started.stdout and "NOTHING WAS APPLIED TO A CLUSTER" in started.stdout
    objects = manifests(ws, tmp_path)
    assert route_weights(objects) == [(stable, 90), (f"{stable}-canary", 10)]
    deployments = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
    assert set(deployments) == {stable, f"{stable}-canary"}
    pod = deployments[f"{stable}-canary"]["spec"]["template"]
    assert pod["metadata"]["labels"]["mlops/track"] == "canary" and pod["spec"]["containers"][0]["image"].endswith(":2")
    canary_values = yaml.safe_load(committed(tmp_path, f"HEAD:production/{name}/values-canary.yaml"))
    assert canary_values["model"]["version"] == "2" and canary_values["canary"] == {"enabled": True}
    message = subprocess.run(["git", "-C", str(tmp_path / "gitops"), "log", "-1", "--format=%B"], capture_output=True,
                             text=True).stdout
    assert message.startswith(f"production: {name} canary version 2 at 10%") and "Approved by: releaser@" in message

    now = status(gitops_env, ws)
    assert now["desired"]["stable"]["version"] == "1" and now["desired"]["canary"]["version"] == "2"
    assert now["desired"]["canary_weight"] == 10 and now["desired"]["commit"]
    assert now["observed"] is None and now["in_sync"] is None and "no reachable Kubernetes cluster" in \
        now["observed_detail"]
    assert {(r["track"], r["version"], r["status"]) for r in now["records"]} >= {("canary", "2", "desired"),
                                                                                 ("stable", "1", "desired")}
    from ml_service.deploy import records

    assert "production canary (desired state)" in records.live_versions(ws, name)["2"]  # not deletable

    head = committed(tmp_path, "HEAD")
    refused = cli("deploy", "prod", "--model", f"{name}:3", env=gitops_env)
    assert refused.returncode == 1 and "a canary of" in refused.stderr and "promote" in refused.stderr
    assert committed(tmp_path, "HEAD") == head

    promoted = cli("deploy", "promote", env=gitops_env)
    assert promoted.returncode == 0, promoted.stderr
    objects = manifests(ws, tmp_path)
    assert route_weights(objects) == [(stable, 100)]
    assert [o["metadata"]["name"] for o in objects if o["kind"] == "Deployment"] == [stable]
    values = yaml.safe_load(committed(tmp_path, f"HEAD:production/{name}/values-prod.yaml"))
    assert values["model"]["version"] == "2" and values["route"] == ROUTE and "canary" not in values
    assert committed(tmp_path, f"HEAD:production/{name}/values-canary.yaml") is None  # removed in the commit
    listing = cli("deploy", "list", "--json", env=gitops_env)
    rows = [r for r in json.loads(listing.stdout) if r["environment"] == "production"]
    assert [(r["track"], r["version"], r["status"]) for r in rows] == [("stable", "2", "desired")]

    assert cli("deploy", "prod", "--model", f"{name}:3", "--canary", "50", env=gitops_env).returncode == 0
    assert route_weights(manifests(ws, tmp_path)) == [(stable, 50), (f"{stable}-canary", 50)]
    aborted = cli("deploy", "abort", env=gitops_env)
    assert aborted.returncode == 0, aborted.stderr
    assert "abort canary version 3" in aborted.stdout and "NOTHING WAS APPLIED" in aborted.stdout
    assert route_weights(manifests(ws, tmp_path)) == [(stable, 100)]
    values = yaml.safe_load(committed(tmp_path, f"HEAD:production/{name}/values-prod.yaml"))
    assert values["model"]["version"] == "2" and "canary" not in values
    assert committed(tmp_path, f"HEAD:production/{name}/values-canary.yaml") is None
    latest = records.list_deployments(ws, "production")[0]
    assert (latest.track, latest.version, latest.status) == ("canary", "3", "removed") and "aborted" in latest.detail
    assert not any("canary" in where for where in records.live_versions(ws, name).get("3", set()))
    again = cli("deploy", "abort", env=gitops_env)
    assert again.returncode == 2 and "no canary" in again.stderr


@pytest.fixture(scope="module")
def model_dir(ws, tmp_path_factory):
    """The files of registered version 1, which the FAKE cluster's services serve."""
    from ml_service.deploy.image import download_model
    from ml_service.workspace.tracking import connect

    return download_model(connect(ws).get_model_version(ws.model_name, "1"), tmp_path_factory.mktemp("served"))


@pytest.fixture()
def cluster_env(tmp_path, model_dir):
    """Cluster mode against the FAKE API server (tests/support/fakes), with a routed root."""
    return make_cluster_env(tmp_path, model_dir)


def make_cluster_env(tmp_path, model_dir):
    """The environment of cluster mode against a new FAKE API server in tmp_path, with a routed root."""
    from ml_service.deploy.chart import helm_binary

    state = tmp_path / "fake-cluster"
    state.mkdir()
    return {"MLOPS_HELM": str(FAKES / "helm"), "MLOPS_KUBECTL": str(FAKES / "kubectl"),
            "FAKE_LOG": str(tmp_path / "calls.log"), "FAKE_PYTHON": sys.executable, "FAKE_REAL_HELM": helm_binary(),
            "FAKE_STATE": str(state), "FAKE_SECRET_KEYS": KEY, "MLOPS_SCORING_KEY": KEY, "MODEL_DIR": str(model_dir),
            "MLOPS_SCORE_MODULE": ws_score_module(), "MLOPS_ROOT": str(project_root(tmp_path))}


def ws_score_module():
    return load_settings().model.score_module


def applied(env, name):
    """The revisions the FAKE API server holds for a release, or None when it has none."""
    path = os.path.join(env["FAKE_STATE"], "releases", f"{name}.json")
    return json.load(open(path)) if os.path.exists(path) else None


@pytest.mark.slow
def test_canary_and_promote_on_a_cluster_are_helm_releases_and_a_canary_failing_its_smoke_test_is_gone(ws, cluster_env):
    """The `mlops deploy` commands' wiring on a cluster (the FAKE API server), each step smoke-tested through the
    Service; abort on a cluster is test_on_a_cluster_abort_uninstalls_the_canary_and_keeps_the_alias above."""
    name, stable = ws.model_name, release(ws)
    canary = f"{stable}-canary"
    assert cli("deploy", "prod", "--model", f"{name}:1", "--smoke-timeout", "120", env=cluster_env).returncode == 0
    started = cli("deploy", "prod", "--model", f"{name}:2", "--canary", "20", "--smoke-timeout", "120",
                  env=cluster_env)
    assert started.returncode == 0, started.stderr
    assert "applied to the cluster with helm" in started.stdout
    calls = open(cluster_env["FAKE_LOG"]).read()
    assert f"helm upgrade --install {canary} " in calls and f"kubectl port-forward svc/{canary} " in calls
    stable_now = applied(cluster_env, stable)[-1]
    assert stable_now["values"]["canary"] == {"weight": 20, "service": canary}
    assert route_weights([o for o in yaml.safe_load_all(stable_now["manifest"]) if o]) == [(stable, 80), (canary, 20)]
    assert applied(cluster_env, canary)[-1]["values"]["model"]["version"] == "2"
    now = status(cluster_env, ws)
    assert now["mode"] == "helm" and now["in_sync"] is True
    assert now["observed"]["stable"]["version"] == "1" and now["observed"]["canary"]["version"] == "2"
    assert now["observed"]["canary_weight"] == 20

    promoted = cli("deploy", "promote", "--smoke-timeout", "120", env=cluster_env)
    assert promoted.returncode == 0, promoted.stderr
    assert applied(cluster_env, canary) is None  # uninstalled
    stable_now = applied(cluster_env, stable)[-1]
    assert stable_now["values"]["model"]["version"] == "2" and "canary" not in stable_now["values"]
    from ml_service.workspace.tracking import connect

    assert str(connect(ws).get_model_version_by_alias(name, "production").version) == "2"
    now = status(cluster_env, ws)
    assert now["observed"]["stable"]["version"] == "2" and now["observed"]["canary"] is None and now["in_sync"]

    broken = cli("deploy", "prod", "--model", f"{name}:3", "--canary", "10", "--smoke-timeout", "3",
                 env={**cluster_env, "FAKE_SERVICE": "broken"})
    assert broken.returncode == 1 and "the new release was uninstalled" in broken.stderr, broken.stderr
    assert applied(cluster_env, canary) is None and "canary" not in applied(cluster_env, stable)[-1]["values"]
