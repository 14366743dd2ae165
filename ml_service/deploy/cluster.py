"""Production on a reachable cluster with the real helm: install or upgrade a release with rollback on
failure and --wait, smoke test through its Service (kubectl port-forward on 127.0.0.1), and undo a
release whose smoke test fails (rollback to the previous revision, or uninstall a new release).
What helm applied is read back with `helm get values`, so status reports what the cluster holds.
"""
from __future__ import annotations

import socket
import subprocess

import yaml

from ml_service import env as envvars
from ml_service.config import Settings
from ml_service.deploy import chart
from ml_service.deploy.payload import smoke_payload
from ml_service.deploy.qa import DeployError
from ml_service.deploy.smoke import SmokeTestError, smoke_test


def cluster_mode() -> tuple[bool, str]:
    """(True, "") when helm and a reachable cluster exist, else (False, why not)."""
    if chart.tool_binary("helm") is None:
        return False, "no helm binary (run `make install`)"
    kubectl = chart.tool_binary("kubectl")
    if kubectl is None:
        return False, "no kubectl binary (run `make install`)"
    probe = subprocess.run([kubectl, "cluster-info", "--request-timeout=5s"], capture_output=True, text=True)
    if probe.returncode != 0:
        return False, "no reachable Kubernetes cluster (kubectl cluster-info failed)"
    return True, ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def exists(release: str) -> bool:
    """Whether the cluster has this helm release."""
    return chart.run_helm("status", release).returncode == 0


def applied_values(release: str) -> dict | None:
    """The values helm applied to a release (`helm get values`), None when the cluster has no such release."""
    done = chart.run_helm("get", "values", release, "-o", "yaml")
    if done.returncode != 0:
        if "not found" in done.stderr:
            return None
        raise DeployError(f"helm get values {release} failed: {done.stderr.strip()[-2000:]}")
    return yaml.safe_load(done.stdout) or {}


def uninstall(release: str) -> None:
    """Remove a release (the canary once it is promoted or aborted)."""
    done = chart.run_helm("uninstall", release, "--wait")
    if done.returncode != 0 and "not found" not in done.stderr:
        raise DeployError(f"helm uninstall {release} failed: {done.stderr.strip()[-2000:]}")


def smoke_through_service(settings: Settings, release: str, model_name: str, timeout: float) -> None:
    """The smoke test through the release's Service, forwarded to 127.0.0.1; SmokeTestError if it fails."""
    port = _free_port()
    kubectl = chart.tool_binary("kubectl") or "kubectl"
    forward = subprocess.Popen([kubectl, "port-forward", f"svc/{release}", f"{port}:80", "--address", "127.0.0.1"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        smoke_test(f"http://127.0.0.1:{port}", key=envvars.MLOPS_SCORING_KEY.get() or None,
                   timeout_s=timeout, payload=smoke_payload(settings.for_registered(model_name)))
    finally:
        forward.terminate()
        forward.wait(10)


def apply(settings: Settings, release: str, values_text: str, smoke_timeout: float | None) -> None:
    """helm upgrade --install (rolled back by helm if it fails) --wait; then, unless smoke_timeout is None, the
    smoke test through the Service, undone if it fails (rollback, or uninstall when the release is new)."""
    values_file = settings.state_dir / "deploy" / release / "values.yaml"
    values_file.parent.mkdir(parents=True, exist_ok=True)
    values_file.write_text(values_text)
    existed = exists(release)
    flag = chart.rollback_flag()
    upgrade = chart.run_helm("upgrade", "--install", release, str(settings.root / "charts" / "scoring"),
                             "-f", str(values_file), flag, "--wait", "--timeout", "10m")
    if upgrade.returncode != 0:
        raise DeployError(f"helm upgrade failed (release {release}; helm {flag} rolled it back): "
                          f"{upgrade.stderr.strip()[-2000:]}")
    if smoke_timeout is None:
        return
    model_name = (yaml.safe_load(values_text) or {})["model"]["name"]
    try:
        smoke_through_service(settings, release, model_name, smoke_timeout)
    except SmokeTestError as exc:
        if existed:
            undo = chart.run_helm("rollback", release, "0", "--wait")
            state = "rolled back to the previous revision" if undo.returncode == 0 \
                else f"ROLLBACK FAILED: {undo.stderr.strip()}"
        else:
            undo = chart.run_helm("uninstall", release, "--wait")
            state = "the new release was uninstalled" if undo.returncode == 0 \
                else f"UNINSTALL FAILED: {undo.stderr.strip()}"
        raise DeployError(f"smoke test through the service failed (release {release}: {exc}); {state}") from None
