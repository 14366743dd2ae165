"""Production deployment. On these machines no Kubernetes API and no helm exist, so production runs
in GitOps mode: the desired state (image and model version, as chart values) is committed to the
GitOps target named in mlops.yml, recorded as "desired state committed, not applied", and the
`production` alias stays where it was. Nothing is ever reported as deployed that was not.
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from ml_service.config import Settings
from ml_service.deploy import records
from ml_service.deploy.image import image_repository
from ml_service.deploy.qa import DeployError


@dataclass(frozen=True)
class ProductionResult:
    """What `mlops deploy prod` did."""

    mode: str  # gitops
    applied: bool
    message: str
    commit: str = ""
    values_file: str = ""


def gitops_target(settings: Settings) -> tuple[Path, str]:
    """(git repository, values file inside it) from environments.production.gitops in mlops.yml."""
    config = ((settings.environments or {}).get("production") or {}).get("gitops") or {}
    repo = Path(config.get("repo") or settings.state_dir / "gitops")
    repo = repo if repo.is_absolute() else settings.root / repo
    return repo, str(config.get("values_file") or "production/values-prod.yaml")


def cluster_reason() -> str:
    """Why GitOps mode applies on this machine (no helm, or no reachable cluster)."""
    if shutil.which("helm") is None:
        return "no helm binary on PATH"
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return "no kubectl on PATH"
    probe = subprocess.run([kubectl, "cluster-info", "--request-timeout=5s"], capture_output=True, text=True)
    if probe.returncode != 0:
        return "no reachable Kubernetes cluster (kubectl cluster-info failed)"
    return "helm and a cluster are reachable, but applying to a cluster is not implemented yet"


def _git(repo: Path, *args: str, identity: str = "") -> subprocess.CompletedProcess:
    who = ["-c", "user.name=mlops", "-c", f"user.email={identity or 'mlops@localhost'}"]
    return subprocess.run(["git", "-C", str(repo), *who, *args], capture_output=True, text=True)


def desired_values(settings: Settings, model_name: str, version: str) -> dict:
    """Chart values for the new image and model version."""
    return {"image": {"repository": image_repository(settings, model_name), "tag": str(version)},
            "model": {"name": model_name, "version": str(version)}}


def commit_desired_state(settings: Settings, model_name: str, version: str, who: str) -> ProductionResult:
    """Write and commit the desired production state to the GitOps repository."""
    repo, rel = gitops_target(settings)
    if not (repo / ".git").exists():
        repo.mkdir(parents=True, exist_ok=True)
        if _git(repo, "init", "-q", "-b", "main").returncode != 0:
            raise DeployError(f"cannot create the GitOps repository {repo}")
    path = repo / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    header = ("# Desired production state, committed by `mlops deploy prod`.\n"
              "# Apply with: helm upgrade --install scoring charts/scoring -f <this file>, or a GitOps controller.\n")
    path.write_text(header + yaml.safe_dump(desired_values(settings, model_name, version), sort_keys=False))
    _git(repo, "add", rel)
    if _git(repo, "diff", "--cached", "--quiet").returncode == 0:
        commit = _git(repo, "rev-parse", "HEAD").stdout.strip()
        note = "unchanged"
    else:
        done = _git(repo, "commit", "-q", "-m", f"production: {model_name} version {version}", identity=who)
        if done.returncode != 0:
            raise DeployError(f"git commit in {repo} failed: {done.stderr.strip()}")
        commit = _git(repo, "rev-parse", "HEAD").stdout.strip()
        note = "committed"
    return ProductionResult("gitops", False, note, commit, str(path))


def deploy_prod(settings: Settings, ref: str, who: str = "") -> ProductionResult:
    """Deploy a registered version to production in the mode this machine allows."""
    from ml_service.workspace import registry, tracking

    version = registry.resolve_version(tracking.connect(settings), ref)
    reason = cluster_reason()
    result = commit_desired_state(settings, version.name, str(version.version), who)
    image = f"{image_repository(settings, version.name)}:{version.version}"
    records.record(settings, "production", version.name, str(version.version), image, "", records.DESIRED,
                   "gitops", detail=f"desired state {result.message} at {result.commit[:12]}; not applied: {reason}",
                   target=result.values_file)
    message = (f"GitOps mode ({reason}): desired state for {version.name} version {version.version} "
               f"{result.message} in {result.values_file} at commit {result.commit[:12]}.\n"
               f"NOTHING WAS APPLIED TO A CLUSTER; the 'production' alias was not moved.")
    return ProductionResult(result.mode, False, message, result.commit, result.values_file)
