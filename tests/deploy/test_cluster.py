"""Production on a cluster (cluster.py) in-process against the FAKE Kubernetes API server of tests/support/fakes,
and the fake itself held to the real helm.

cluster.apply: helm upgrade --install, then the smoke test through the Service; a failed smoke test is undone by a
rollback when the release existed and by an uninstall when this apply installed it. applied_values and uninstall
tell a missing release from a failure. The FAKE helm speaks as the real helm does: every message it prints is one
the real binary in .venv/bin carries, and what the real helm says without a cluster is what the production code
is tested against (the real binary is the record: `make install` pins it).
"""
from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from ml_service.deploy import cluster, production
from ml_service.deploy.chart import helm_binary
from ml_service.deploy.qa import DeployError
from tests.conftest import ROOT
from tests.deploy import test_production as production_tests
from tests.deploy.test_production import NAME

pytestmark = pytest.mark.integration
project, fake_cluster = production_tests.project, production_tests.fake_cluster  # its fixtures
FAKE = ROOT / "tests" / "support" / "fakes" / "fake_cluster.py"
# What the fake prints, as fragments of the real helm's own format strings.
MESSAGES = ["release: not found", "does not exist. Installing it now.", "has been upgraded. Happy Helming!",
            "Rollback was a success! Happy Helming!", "INSTALLATION FAILED", "UPGRADE FAILED",
            "due to rollback-on-failure", "LAST DEPLOYED", "release has no"]


@pytest.fixture(scope="module")
def real_helm() -> bytes:
    return open(helm_binary(), "rb").read()


@pytest.mark.parametrize("message", MESSAGES)
def test_every_message_of_the_fake_is_the_real_helms(message, real_helm):
    """Folded from test_gaps_fake_helm.py: a fake that invents messages tests code against a helm that is not."""
    assert message in FAKE.read_text(), f"the fake no longer prints {message!r}: update MESSAGES"
    assert message.encode() in real_helm, f"the real helm has no message {message!r}: the fake invents it"


def test_without_a_cluster_the_real_helm_fails_with_exit_code_1(tmp_path):
    config = tmp_path / "kubeconfig"
    config.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "none",
        "clusters": [{"name": "none", "cluster": {"server": "https://127.0.0.1:1"}}],
        "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}],
        "users": [{"name": "none", "user": {"token": "none"}}]}))
    done = subprocess.run([helm_binary(), "status", "scoring-x", "--kubeconfig", str(config)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1 and done.stderr.startswith("Error: ") and "127.0.0.1:1" in done.stderr


def releases(project):
    """The FAKE API server's releases: name -> revisions."""
    folder = project.state_dir.parent / "cluster" / "releases"
    return {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")} if folder.is_dir() else {}


def values_of(project, version: str, release: str) -> str:
    return production.values_text(production.desired_values(project, NAME, version), release)


def test_the_mode_is_a_cluster_only_when_kubectl_reaches_one(project, fake_cluster, monkeypatch):
    assert cluster.cluster_mode() == (True, "")
    monkeypatch.setenv("MLOPS_KUBECTL", "/bin/false")  # kubectl cluster-info fails
    assert cluster.cluster_mode() == (False, "no reachable Kubernetes cluster (kubectl cluster-info failed)")


def test_a_failed_smoke_test_rolls_an_existing_release_back(project, fake_cluster, monkeypatch):
    release = production.release_name(project, NAME)
    cluster.apply(project, release, values_of(project, "1", release), None)
    monkeypatch.setenv("FAKE_SERVICE", "broken")
    with pytest.raises(DeployError, match="rolled back to the previous revision"):
        cluster.apply(project, release, values_of(project, "2", release), 1)
    history = releases(project)[release]
    assert [r["description"] for r in history] == ["Install complete", "Upgrade complete", "Rollback to 1"]
    assert history[-1]["values"]["model"]["version"] == "1" and history[-1]["manifest"] == history[0]["manifest"]
    assert cluster.applied_values(release)["model"]["version"] == "1"
    calls = fake_cluster.read_text()
    assert f"helm rollback {release} 0 --wait" in calls and "helm uninstall" not in calls


def test_a_failed_smoke_test_uninstalls_a_release_it_installed(project, fake_cluster, monkeypatch):
    release = production.release_name(project, NAME)
    monkeypatch.setenv("FAKE_SERVICE", "broken")
    with pytest.raises(DeployError, match="the new release was uninstalled"):
        cluster.apply(project, release, values_of(project, "1", release), 1)
    assert release not in releases(project) and cluster.applied_values(release) is None
    assert "helm rollback" not in fake_cluster.read_text()


def test_without_a_smoke_timeout_nothing_is_forwarded_and_the_release_stays(project, fake_cluster, monkeypatch):
    release = production.release_name(project, NAME)
    monkeypatch.setenv("FAKE_SERVICE", "broken")  # a smoke test would fail: none is run
    cluster.apply(project, release, values_of(project, "1", release), None)
    assert cluster.applied_values(release)["model"] == {"name": NAME, "version": "1"}
    assert "port-forward" not in fake_cluster.read_text()
    given = project.state_dir / "deploy" / release / "values.yaml"  # what helm was given, kept beside the state
    assert yaml.safe_load(given.read_text())["model"]["version"] == "1"


def test_a_failed_upgrade_says_helm_rolled_it_back_and_keeps_the_release(project, fake_cluster, monkeypatch):
    release = production.release_name(project, NAME)
    cluster.apply(project, release, values_of(project, "1", release), None)
    monkeypatch.setenv("FAKE_HELM_FAIL", f"upgrade:{release}")
    with pytest.raises(DeployError, match=f"helm upgrade failed \\(release {release}; helm --"):
        cluster.apply(project, release, values_of(project, "2", release), None)
    assert [r["values"]["model"]["version"] for r in releases(project)[release]] == ["1"]
    monkeypatch.setenv("FAKE_HELM_FAIL", "upgrade:another-release")  # only the named release fails
    cluster.apply(project, release, values_of(project, "2", release), None)
    assert cluster.applied_values(release)["model"]["version"] == "2"


def test_a_missing_release_has_no_values_and_uninstalling_it_is_no_error(project, fake_cluster):
    assert cluster.applied_values("scoring-nothing") is None
    cluster.uninstall("scoring-nothing")
    release = production.release_name(project, NAME)
    cluster.apply(project, release, values_of(project, "1", release), None)
    assert cluster.exists(release)
    cluster.uninstall(release)
    assert not cluster.exists(release) and release not in releases(project)


def test_the_smoke_test_through_the_service_sends_the_deployed_models_own_payload(project, fake_cluster, monkeypatch):
    """Two model projects, the first selected: a release of the second is smoke tested with the second's
    scoring/smoke.json (the payload fits its columns), not the selected project's."""
    from ml_service.config import load_settings

    (project.root / "mlops.yml").write_text(f"models:\n  - {{project: proj, name: {NAME}}}\n"
                                            "  - {project: other, name: other_model}\n")
    for folder, value in (("proj", 1), ("other", 2)):
        (project.root / folder / "scoring").mkdir(parents=True)
        (project.root / folder / "scoring" / "smoke.json").write_text(json.dumps({"data": [[value]]}))
    sent = []
    monkeypatch.setattr(cluster, "smoke_test", lambda url, **given: sent.append(given["payload"]))
    cluster.smoke_through_service(load_settings(), "scoring-other-model", "other_model", 1)
    assert sent == [{"data": [[2]]}]
