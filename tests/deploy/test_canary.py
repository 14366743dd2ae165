"""Canary, promote, abort and `deploy status production`: GitOps mode for real (the real kubectl finds no
cluster; each step is a commit of a real git repository, its manifests rendered by the real helm and
validated offline, the HTTPRoute against the Gateway API CRD), and cluster mode against the FAKE
Kubernetes API server of tests/support/fakes (only what needs an API server is faked; the smoke
tests are real HTTP to the real scoring service).

The canary needs the production route, configured in mlops.yml: each test runs the CLI with a project
root whose mlops.yml adds `environments.production.values.route` and its own GitOps repository (every
other file is a link to this checkout).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from ml_service.config import load_settings
from tests.conftest import ROOT, workspace_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]
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
    done = mlops("deploy", "status", "production", "--model", ws.model_name, "--json", env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)[0]


def test_canary_then_promote_in_gitops_mode_are_commits_that_split_then_move_the_traffic(ws, gitops_env, tmp_path):
    name, stable = ws.model_name, release(ws)
    assert mlops("deploy", "prod", "--model", f"{name}:1", env=gitops_env).returncode == 0
    assert route_weights(manifests(ws, tmp_path)) == [(stable, 100)]

    started = mlops("deploy", "prod", "--model", f"{name}:2", "--canary", "10", env=gitops_env)
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

    ramp = mlops("deploy", "prod", "--model", f"{name}:2", "--canary", "25", env=gitops_env)
    assert ramp.returncode == 0 and route_weights(manifests(ws, tmp_path))[1] == (f"{stable}-canary", 25)
    refused = mlops("deploy", "prod", "--model", f"{name}:3", env=gitops_env)
    assert refused.returncode == 1 and "a canary of" in refused.stderr and "promote" in refused.stderr
    other = mlops("deploy", "prod", "--model", f"{name}:3", "--canary", "5", env=gitops_env)
    assert other.returncode == 2 and "runs already" in other.stderr

    promoted = mlops("deploy", "promote", env=gitops_env)
    assert promoted.returncode == 0, promoted.stderr
    objects = manifests(ws, tmp_path)
    assert route_weights(objects) == [(stable, 100)]
    assert [o["metadata"]["name"] for o in objects if o["kind"] == "Deployment"] == [stable]
    values = yaml.safe_load(committed(tmp_path, f"HEAD:production/{name}/values-prod.yaml"))
    assert values["model"]["version"] == "2" and values["route"] == ROUTE and "canary" not in values
    assert committed(tmp_path, f"HEAD:production/{name}/values-canary.yaml") is None  # removed in the commit
    now = status(gitops_env, ws)
    assert now["desired"]["stable"]["version"] == "2" and now["desired"]["canary"] is None
    listing = mlops("deploy", "list", "--json", env=gitops_env)
    rows = [r for r in json.loads(listing.stdout) if r["environment"] == "production"]
    assert [(r["track"], r["version"], r["status"]) for r in rows] == [("stable", "2", "desired")]


def test_abort_returns_all_traffic_to_stable_and_is_recorded(ws, gitops_env, tmp_path):
    name, stable = ws.model_name, release(ws)
    assert mlops("deploy", "prod", "--model", f"{name}:1", env=gitops_env).returncode == 0
    assert mlops("deploy", "prod", "--model", f"{name}:3", "--canary", "50", env=gitops_env).returncode == 0
    assert route_weights(manifests(ws, tmp_path)) == [(stable, 50), (f"{stable}-canary", 50)]
    aborted = mlops("deploy", "abort", env=gitops_env)
    assert aborted.returncode == 0, aborted.stderr
    assert "abort canary version 3" in aborted.stdout and "NOTHING WAS APPLIED" in aborted.stdout
    assert route_weights(manifests(ws, tmp_path)) == [(stable, 100)]
    values = yaml.safe_load(committed(tmp_path, f"HEAD:production/{name}/values-prod.yaml"))
    assert values["model"]["version"] == "1" and "canary" not in values
    assert committed(tmp_path, f"HEAD:production/{name}/values-canary.yaml") is None
    from ml_service.deploy import records

    latest = records.list_deployments(ws, "production")[0]
    assert (latest.track, latest.version, latest.status) == ("canary", "3", "removed") and "aborted" in latest.detail
    assert not any("canary" in where for where in records.live_versions(ws, name).get("3", set()))
    again = mlops("deploy", "abort", env=gitops_env)
    assert again.returncode == 2 and "no canary" in again.stderr


def test_a_canary_needs_a_stable_release_and_the_route(ws, gitops_env, tmp_path):
    name = ws.model_name
    first = mlops("deploy", "prod", "--model", f"{name}:2", "--canary", "10", env=gitops_env)
    assert first.returncode == 2 and "no stable release" in first.stderr and "Traceback" not in first.stderr
    no_route = {**gitops_env, "MLOPS_ROOT": str(project_root(tmp_path / "plain", route=False))}
    assert mlops("deploy", "prod", "--model", f"{name}:1", env=no_route).returncode == 0
    head = committed(tmp_path / "plain", "HEAD")
    refused = mlops("deploy", "prod", "--model", f"{name}:2", "--canary", "10", env=no_route)
    assert refused.returncode == 2 and "environments.production.values.route" in refused.stderr
    assert committed(tmp_path / "plain", "HEAD") == head  # nothing committed
    bad = mlops("deploy", "prod", "--model", f"{name}:2", "--canary", "150", env=no_route)
    assert bad.returncode == 2 and "not a percent from 1 to 100" in bad.stderr


@pytest.fixture(scope="module")
def model_dir(ws, tmp_path_factory):
    """The files of registered version 1, which the FAKE cluster's services serve."""
    from ml_service.deploy.image import download_model
    from ml_service.workspace.tracking import connect

    return download_model(connect(ws).get_model_version(ws.model_name, "1"), tmp_path_factory.mktemp("served"))


@pytest.fixture()
def cluster_env(tmp_path, model_dir):
    """Cluster mode against the FAKE API server (tests/support/fakes), with a routed root."""
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


def test_canary_promote_and_abort_on_a_cluster_are_helm_releases(ws, cluster_env):
    name, stable = ws.model_name, release(ws)
    canary = f"{stable}-canary"
    assert mlops("deploy", "prod", "--model", f"{name}:1", "--smoke-timeout", "30", env=cluster_env).returncode == 0
    started = mlops("deploy", "prod", "--model", f"{name}:2", "--canary", "20", "--smoke-timeout", "30",
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

    promoted = mlops("deploy", "promote", "--smoke-timeout", "30", env=cluster_env)
    assert promoted.returncode == 0, promoted.stderr
    assert applied(cluster_env, canary) is None  # uninstalled
    stable_now = applied(cluster_env, stable)[-1]
    assert stable_now["values"]["model"]["version"] == "2" and "canary" not in stable_now["values"]
    from ml_service.workspace.tracking import connect

    assert str(connect(ws).get_model_version_by_alias(name, "production").version) == "2"
    now = status(cluster_env, ws)
    assert now["observed"]["stable"]["version"] == "2" and now["observed"]["canary"] is None and now["in_sync"]

    broken = mlops("deploy", "prod", "--model", f"{name}:3", "--canary", "10", "--smoke-timeout", "3",
                   env={**cluster_env, "FAKE_SERVICE": "broken"})
    assert broken.returncode == 1 and "the new release was uninstalled" in broken.stderr, broken.stderr
    assert applied(cluster_env, canary) is None and "canary" not in applied(cluster_env, stable)[-1]["values"]

    assert mlops("deploy", "prod", "--model", f"{name}:3", "--canary", "10", "--smoke-timeout", "30",
                 env=cluster_env).returncode == 0
    aborted = mlops("deploy", "abort", env=cluster_env)
    assert aborted.returncode == 0, aborted.stderr
    assert applied(cluster_env, canary) is None
    stable_now = applied(cluster_env, stable)[-1]
    assert stable_now["values"]["model"]["version"] == "2" and "canary" not in stable_now["values"]
    assert route_weights([o for o in yaml.safe_load_all(stable_now["manifest"]) if o]) == [(stable, 100)]
    assert str(connect(ws).get_model_version_by_alias(name, "production").version) == "2"
