"""Production deployment, in the mode the machine allows, never reporting what did not happen.

1. A cluster answers (`kubectl cluster-info` with the kubeconfig): `helm upgrade --install` with
   rollback on failure and `--wait`, smoke test through the Service (kubectl port-forward on
   127.0.0.1), `helm rollback` if the smoke test fails; the deployment is recorded and the
   `production` alias moves only on success.
2. Otherwise (these machines): the desired state (chart values with the new image and model
   version) is validated offline and committed to the GitOps target named in mlops.yml, recorded
   as "desired state committed, not applied", and the `production` alias stays where it was.
Both modes first render the chart with the real `helm template` (which checks the values against
values.schema.json) and validate every rendered object with kubernetes-validate --strict. helm is
always there (`make install` pins it into .venv/bin), so whether a cluster answers decides the mode.
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml

from ml_service.config import Settings
from ml_service.deploy import chart, records
from ml_service.deploy.image import image_repository
from ml_service.deploy.payload import smoke_payload
from ml_service.deploy.qa import DeployError
from ml_service.deploy.smoke import SmokeTestError, smoke_test

KUBERNETES_VERSION = "1.37"


@dataclass(frozen=True)
class ProductionResult:
    """What `mlops deploy prod` did."""

    mode: str  # helm | gitops
    applied: bool
    message: str
    commit: str = ""
    values_file: str = ""


def production_config(settings: Settings) -> dict:
    """environments.production from mlops.yml."""
    return (settings.environments or {}).get("production") or {}


def chart_dir(settings: Settings) -> Path:
    """The scoring chart."""
    return settings.root / "charts" / "scoring"


def _for_model(template: str, model_name: str) -> str:
    """A configured name with {model} replaced by the registered model's name."""
    return template.replace("{model}", model_name)


def release_name(settings: Settings, model_name: str) -> str:
    """The helm release of a model: environments.production.release ({model} allowed), as a DNS label."""
    template = str(production_config(settings).get("release") or "scoring-{model}")
    name = re.sub(r"[^a-z0-9-]+", "-", _for_model(template, model_name).lower()).strip("-")
    return name[:53].rstrip("-")  # helm's limit for a release name


def gitops_target(settings: Settings, model_name: str) -> tuple[Path, str, str]:
    """(git repository, values file inside it, branch or "") from environments.production.gitops in mlops.yml;
    {model} in values_file is the registered model's name, so each model has its own desired state."""
    config = production_config(settings).get("gitops") or {}
    repo = Path(config.get("repo") or settings.state_dir / "gitops")
    repo = repo if repo.is_absolute() else settings.root / repo
    values_file = _for_model(str(config.get("values_file") or "production/{model}/values-prod.yaml"), model_name)
    return repo, values_file, str(config.get("branch") or "")


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


def desired_values(settings: Settings, model_name: str, version: str) -> dict:
    """Chart values for the new image and model version (what values-prod.yaml holds), with the resources
    and autoscaling of the model project's scoring/deployment_config_k8s.yml when it has one."""
    values: dict = {"image": {"repository": image_repository(settings, model_name), "tag": str(version)},
                    "model": {"name": model_name, "version": str(version)}}
    settings = settings.for_registered(model_name)
    if settings.models and settings.model.name == model_name:
        values.update(k8s_values(settings.model.folder / "scoring" / "deployment_config_k8s.yml"))
    return values


def k8s_values(path: Path) -> dict:
    """Chart values from an MLOpsPython-style deployment config (cpu, memoryInGB, autoScaler); {} without one."""
    if not path.is_file():
        return {}
    try:
        config = yaml.safe_load(path.read_text()) or {}
        wanted = config.get("containerResourceRequirements") or {}
        cpu, memory = f"{int(float(wanted['cpu']) * 1000)}m", f"{float(wanted['memoryInGB']):g}Gi"
    except (KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
        raise DeployError(f"{path}: cannot read containerResourceRequirements cpu/memoryInGB: {exc}") from None
    values: dict = {"resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": cpu, "memory": memory}}}
    scaler = config.get("autoScaler") or {}
    if scaler:
        values["autoscaling"] = {"enabled": True, "minReplicas": int(scaler.get("minReplicas", 1)),
                                 "maxReplicas": int(scaler.get("maxReplicas", 1)),
                                 "targetCPUUtilizationPercentage": int(scaler.get("targetUtilization", 70))}
    return values


def validate_offline(settings: Settings, desired: dict) -> list[dict]:
    """Render with `helm template` (values checked against values.schema.json by helm), then every object with
    kubernetes-validate --strict (custom resources: their vendored CRD schema); the objects."""
    release = release_name(settings, desired["model"]["name"])
    try:
        objects = chart.render(chart_dir(settings), desired, release=release)
        chart.validate_objects(chart_dir(settings), objects, KUBERNETES_VERSION)
    except chart.ChartError as exc:
        raise DeployError(f"the production state is invalid: {exc}") from None
    return objects


def _values_text(desired: dict, release: str) -> str:
    return ("# Desired production state, written by `mlops deploy prod`.\n"
            f"# Apply with: helm upgrade --install {release} charts/scoring -f <this file>, or a GitOps controller.\n"
            + yaml.safe_dump(desired, sort_keys=False))


def _git(repo: Path, *args: str, identity: str = "", stdin: str | None = None,
         env: dict | None = None) -> subprocess.CompletedProcess:
    who = ["-c", "user.name=mlops", "-c", f"user.email={identity or 'mlops@localhost'}"]
    return subprocess.run(["git", "-C", str(repo), *who, *args], capture_output=True, text=True, input=stdin,
                          env={**os.environ, **env} if env else None)


def _is_repository(repo: Path) -> bool:
    """A work tree with .git, or a bare repository (not merely a folder inside some other repository)."""
    return (repo / ".git").exists() or ((repo / "HEAD").is_file() and (repo / "objects").is_dir())


def _commit_message(desired: dict, provenance: str = "") -> str:
    subject = f"production: {desired['model']['name']} version {desired['model']['version']}"
    return f"{subject}\n\n{provenance}" if provenance else subject


def provenance(settings: Settings, desired: dict, tags: dict, who: str) -> str:
    """The commit message body: model version, image, the pipeline run that built the model and the one that
    deploys it, and who approved; what is not known is said so, never invented."""
    image = f"{desired['image']['repository']}:{desired['image']['tag']}"
    built_by = tags.get("BuildId") or "none recorded"
    if tags.get("BuildUri"):
        built_by += f" ({tags['BuildUri']})"
    deployed_by = settings.build_id or "none (run by hand)"
    if settings.build_uri:
        deployed_by += f" ({settings.build_uri})"
    return (f"Model: {desired['model']['name']} version {desired['model']['version']}\n"
            f"Image: {image} (a tag: no digest is recorded for it)\n"
            f"Trained by pipeline run: {built_by}\n"
            f"Deployed by pipeline run: {deployed_by}\n"
            f"Approved by: {who or 'nobody recorded'}\n")


def desired_files(settings: Settings, desired: dict, values_rel: str) -> dict[str, str]:
    """What a GitOps controller needs, by path in the target: the values file and, beside it, manifests.yaml with
    every object `helm template` renders for it (Argo CD or Flux can apply either)."""
    release = release_name(settings, desired["model"]["name"])
    manifests = chart.render_text(chart_dir(settings), desired, release=release, skip_tests=True)
    header = (f"# Rendered by `helm template {release} charts/scoring -f values-prod.yaml` for `mlops deploy prod`;\n"
              "# validated offline (values.schema.json, kubernetes-validate --strict). Apply with kubectl or a "
              "GitOps controller.\n")
    manifests_rel = str(PurePosixPath(values_rel).parent / "manifests.yaml")
    return {values_rel: _values_text(desired, release), manifests_rel: header + manifests}


def _commit_to_branch(repo: Path, branch: str, files: dict[str, str], message: str, who: str) -> tuple[str, str]:
    """Commit files ({path: text}) to `branch` with git plumbing: no checkout, the work tree and HEAD stay as they
    are."""
    ref = f"refs/heads/{branch}"
    if _git(repo, "check-ref-format", ref).returncode != 0:
        raise DeployError(f"environments.production.gitops.branch: {branch!r} is not a valid branch name")
    if _git(repo, "symbolic-ref", "-q", "HEAD").stdout.strip() == ref and (repo / ".git").exists():
        raise DeployError(f"the GitOps branch {branch!r} is checked out in {repo}; committing to it behind the work "
                          "tree's back would be confusing: check out another branch or leave gitops.branch empty")
    parent = _git(repo, "rev-parse", "-q", "--verify", f"{ref}^{{commit}}").stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        index = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        if parent:
            _git(repo, "read-tree", parent, env=index)
        for rel, text in files.items():
            blob = _git(repo, "hash-object", "-w", "--stdin", stdin=text).stdout.strip()
            _git(repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},{rel}", env=index)
        tree = _git(repo, "write-tree", env=index).stdout.strip()
    if parent and tree == _git(repo, "rev-parse", f"{parent}^{{tree}}").stdout.strip():
        return parent, "unchanged"
    made = _git(repo, "commit-tree", tree, *(["-p", parent] if parent else []), "-m", message, identity=who)
    commit = made.stdout.strip()
    # compare-and-swap: a concurrent deploy that moved the branch meanwhile makes this fail, not vanish
    moved = _git(repo, "update-ref", "-m", message.splitlines()[0], ref, commit, parent or "0" * 40) \
        if made.returncode == 0 else made
    if moved.returncode != 0:
        raise DeployError(f"committing to branch {branch!r} of {repo} failed: {moved.stderr.strip()}")
    return commit, "committed"


def commit_desired_state(settings: Settings, desired: dict, who: str, body: str = "") -> tuple[str, str, str]:
    """Commit values-prod.yaml and the rendered manifests.yaml beside it to the GitOps target:
    (where the values file is, commit, committed|unchanged). body: the commit message's provenance lines.

    Without gitops.branch the files are written in the repository's work tree and committed on its
    current branch; with one, they are committed to that branch without touching the work tree.
    """
    model_name = desired["model"]["name"]
    repo, rel, branch = gitops_target(settings, model_name)
    if not _is_repository(repo):
        repo.mkdir(parents=True, exist_ok=True)
        if _git(repo, "init", "-q", "-b", "main").returncode != 0:
            raise DeployError(f"cannot create the GitOps repository {repo}")
    try:
        files = desired_files(settings, desired, rel)
    except chart.ChartError as exc:
        raise DeployError(f"the production state is invalid: {exc}") from None
    message = _commit_message(desired, body)
    if branch:
        commit, state = _commit_to_branch(repo, branch, files, message, who)
        return f"{repo} (branch {branch}) {rel}", commit, state
    if not (repo / ".git").exists():
        raise DeployError(f"{repo} is a bare repository: set environments.production.gitops.branch to commit to it")
    for path, text in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    _git(repo, "add", *files)
    if _git(repo, "diff", "--cached", "--quiet", "--", *files).returncode == 0:
        return str(repo / rel), _git(repo, "rev-parse", "HEAD").stdout.strip(), "unchanged"
    # only these files: whatever else the owner of the repository has staged stays staged, uncommitted
    done = _git(repo, "commit", "-q", "-m", message, "--", *files, identity=who)
    if done.returncode != 0:
        raise DeployError(f"git commit in {repo} failed: {done.stderr.strip()}")
    return str(repo / rel), _git(repo, "rev-parse", "HEAD").stdout.strip(), "committed"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def deploy_to_cluster(settings: Settings, desired: dict, smoke_timeout: float) -> str:
    """helm upgrade --install (rolled back by helm if it fails) --wait, smoke test through the Service, helm rollback
    if the smoke test fails; the release name."""
    release = release_name(settings, desired["model"]["name"])
    values_file = settings.state_dir / "deploy" / release / "values-prod.yaml"
    values_file.parent.mkdir(parents=True, exist_ok=True)
    values_file.write_text(_values_text(desired, release))
    rollback_flag = chart.rollback_flag()
    upgrade = chart.run_helm("upgrade", "--install", release, str(chart_dir(settings)), "-f", str(values_file),
                             rollback_flag, "--wait", "--timeout", "10m")
    if upgrade.returncode != 0:
        raise DeployError(f"helm upgrade failed (helm {rollback_flag} rolled it back): "
                          f"{upgrade.stderr.strip()[-2000:]}")
    port = _free_port()
    kubectl = chart.tool_binary("kubectl") or "kubectl"
    forward = subprocess.Popen([kubectl, "port-forward", f"svc/{release}", f"{port}:80", "--address", "127.0.0.1"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        smoke_test(f"http://127.0.0.1:{port}", key=os.environ.get("MLOPS_SCORING_KEY") or None,
                   timeout_s=smoke_timeout, payload=smoke_payload(settings.for_registered(desired["model"]["name"])))
    except SmokeTestError as exc:
        rollback = chart.run_helm("rollback", release, "0", "--wait")
        state = "rolled back to the previous revision" if rollback.returncode == 0 \
            else f"ROLLBACK FAILED: {rollback.stderr.strip()}"
        raise DeployError(f"smoke test through the service failed ({exc}); {state}") from None
    finally:
        forward.terminate()
        forward.wait(10)
    return release


def deploy_prod(settings: Settings, ref: str, who: str = "", smoke_timeout: float = 120.0) -> ProductionResult:
    """Deploy a registered version to production in the mode this machine allows."""
    from ml_service.workspace import registry, tracking

    client = tracking.connect(settings)
    version = registry.resolve_version(client, ref)
    name, number = version.name, str(version.version)
    desired = desired_values(settings, name, number)
    validate_offline(settings, desired)
    image = f"{desired['image']['repository']}:{number}"
    available, reason = cluster_mode()
    if available:
        try:
            release = deploy_to_cluster(settings, desired, smoke_timeout)
        except DeployError as exc:
            records.record(settings, "production", name, number, image, "", records.FAILED, "helm", detail=str(exc))
            raise
        records.record(settings, "production", name, number, image, "", records.LIVE, "helm", target=release)
        client.set_registered_model_alias(name, "production", number)
        return ProductionResult("helm", True, f"production now serves {name} version {number} (helm release "
                                              f"{release}, smoke test passed); alias 'production' moved")
    values_file, commit, state = commit_desired_state(settings, desired, who,
                                                      provenance(settings, desired, dict(version.tags or {}), who))
    records.record(settings, "production", name, number, image, "", records.DESIRED, "gitops",
                   detail=f"desired state {state} at {commit[:12]}; not applied: {reason}", target=values_file)
    message = (f"GitOps mode ({reason}): desired state for {name} version {number} validated offline and "
               f"{state} in {values_file} (rendered manifests.yaml beside it) at commit {commit[:12]}.\n"
               f"NOTHING WAS APPLIED TO A CLUSTER; the 'production' alias was not moved.")
    return ProductionResult("gitops", False, message, commit, values_file)
