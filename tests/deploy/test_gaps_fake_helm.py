"""The FAKE Kubernetes API server's helm (tests/support/fakes) speaks as the real helm does: every message
it prints is one the real binary in .venv/bin carries, and what the real helm says without a cluster is what
the production code is tested against. The real binary is the record (`make install` pins it)."""
import subprocess

import pytest
import yaml

from ml_service.deploy.chart import helm_binary
from tests.conftest import ROOT

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
