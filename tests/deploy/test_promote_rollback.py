"""`mlops deploy promote` on a cluster when the promotion fails: against the FAKE Kubernetes API server of
tests/support/fakes (the FAKE helm keeps releases in a folder and runs the real helm for the rest, the FAKE
kubectl's port-forward serves the real scoring service), a stable version 1 and a canary version 2 at 20% are
set up, then the promote fails: its smoke test through the Service (FAKE_SERVICE=broken) or its helm upgrade
(FAKE_HELM_FAIL=upgrade). Either way the stable release must be back at its pre-promote revision values, the
canary must keep running, the records and the `production` alias must still name version 1 as stable, and the
command must exit non-zero: a failed promotion that claims the new version is stable would send a broken
version all the traffic on the next deploy.

The helpers and fixtures are test_canary.py's (imported, not copied).
"""
from __future__ import annotations

import pytest

from tests.deploy import test_canary as canary_tests
from tests.deploy.test_canary import applied, release, status
from tests.support.cli import run_cli as mlops

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ws, model_dir = canary_tests.ws, canary_tests.model_dir  # its fixtures


@pytest.fixture(scope="module")
def cluster_env(ws, model_dir, tmp_path_factory):
    """Stable version 1, then canary version 2 at 20%, both smoke-tested through the FAKE cluster's Services, set up
    once: each test's failed promote must leave exactly this state (which it asserts), so the next starts from it."""
    env = canary_tests.make_cluster_env(tmp_path_factory.mktemp("promote"), model_dir)
    name = ws.model_name
    deployed = mlops("deploy", "prod", "--model", f"{name}:1", "--smoke-timeout", "120", env=env)
    assert deployed.returncode == 0, deployed.stderr
    started = mlops("deploy", "prod", "--model", f"{name}:2", "--canary", "20", "--smoke-timeout", "120", env=env)
    assert started.returncode == 0, started.stderr
    return env


def aliases(ws):
    from ml_service.workspace.tracking import connect

    model = connect(ws).get_registered_model(ws.model_name)
    return dict(model.aliases or {})


def log_size(env):
    with open(env["FAKE_LOG"]) as log:
        return len(log.read())


def calls_since(env, size):
    with open(env["FAKE_LOG"]) as log:
        return log.read()[size:]


def assert_nothing_claims_version_2_is_stable(ws, env, stable_before, canary_before, aliases_before):
    """Stable release back at version 1 with the 20% split, canary untouched, records and aliases unchanged."""
    from ml_service.deploy import records

    name, stable = ws.model_name, release(ws)
    canary = f"{stable}-canary"
    assert applied(env, stable)[-1]["values"] == stable_before[-1]["values"]
    assert applied(env, stable)[-1]["values"]["model"]["version"] == "1"
    assert applied(env, stable)[-1]["values"]["canary"] == {"weight": 20, "service": canary}
    assert applied(env, canary) == canary_before  # not uninstalled, not upgraded
    assert aliases(ws) == aliases_before and str(aliases_before["production"]) == "1"
    assert records.current(ws, "production", name).version == "1"
    assert records.current(ws, "production", name, track=records.CANARY).version == "2"
    latest = records.list_deployments(ws, "production")[0]
    assert (latest.track, latest.version, latest.status) == ("stable", "2", records.FAILED)
    assert "promotion failed" in latest.detail
    assert "production canary" in records.live_versions(ws, name)["2"]
    now = status(env, ws)
    assert now["observed"]["stable"]["version"] == "1" and now["observed"]["canary"]["version"] == "2"
    assert now["observed"]["canary_weight"] == 20


def test_a_promote_whose_smoke_test_fails_is_rolled_back_and_claims_nothing(ws, cluster_env):
    stable = release(ws)
    stable_before, canary_before = applied(cluster_env, stable), applied(cluster_env, f"{stable}-canary")
    aliases_before, size = aliases(ws), log_size(cluster_env)

    promoted = mlops("deploy", "promote", "--smoke-timeout", "3", env={**cluster_env, "FAKE_SERVICE": "broken"})
    assert promoted.returncode == 1, (promoted.stdout, promoted.stderr)
    assert "smoke test through the service failed" in promoted.stderr
    assert "rolled back to the previous revision" in promoted.stderr and "Traceback" not in promoted.stderr
    calls = calls_since(cluster_env, size)
    # the FAKE kubectl's log is not read: a port-forward ended after a 3 s smoke test may not have started to log
    assert f"helm upgrade --install {stable} " in calls
    assert f"helm rollback {stable} 0 --wait" in calls and "helm uninstall" not in calls
    after = applied(cluster_env, stable)
    assert [r["revision"] for r in after] == [r["revision"] for r in stable_before] + [len(stable_before) + 1,
                                                                                       len(stable_before) + 2]
    assert after[-2]["values"]["model"]["version"] == "2"  # the promote's upgrade did happen, then was undone
    assert after[-1]["description"] == f"Rollback to {len(stable_before)}"
    assert after[-1]["manifest"] == stable_before[-1]["manifest"]
    assert_nothing_claims_version_2_is_stable(ws, cluster_env, stable_before, canary_before, aliases_before)


def test_a_promote_whose_helm_upgrade_fails_changes_nothing_and_claims_nothing(ws, cluster_env):
    stable = release(ws)
    stable_before, canary_before = applied(cluster_env, stable), applied(cluster_env, f"{stable}-canary")
    aliases_before, size = aliases(ws), log_size(cluster_env)

    promoted = mlops("deploy", "promote", "--smoke-timeout", "120", env={**cluster_env, "FAKE_HELM_FAIL": "upgrade"})
    assert promoted.returncode == 1, (promoted.stdout, promoted.stderr)
    assert "helm upgrade failed" in promoted.stderr and "UPGRADE FAILED" in promoted.stderr
    assert "Traceback" not in promoted.stderr
    calls = calls_since(cluster_env, size)
    upgrade = next(line for line in calls.splitlines() if line.startswith(f"helm upgrade --install {stable} "))
    assert "--rollback-on-failure" in upgrade.split() or "--atomic" in upgrade.split()  # helm undoes it itself
    assert "kubectl port-forward" not in calls and "helm uninstall" not in calls
    assert applied(cluster_env, stable) == stable_before  # helm rolled the failed upgrade back: no new revision
    assert_nothing_claims_version_2_is_stable(ws, cluster_env, stable_before, canary_before, aliases_before)
