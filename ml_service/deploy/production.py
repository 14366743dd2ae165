"""Production deployment, in the mode the machine allows, never reporting what did not happen.

1. A cluster answers (`kubectl cluster-info` with the kubeconfig): `helm upgrade --install` with
   rollback on failure and `--wait`, smoke test through the Service (kubectl port-forward on
   127.0.0.1), `helm rollback` if the smoke test fails; the deployment is recorded and the
   `production` alias moves only on success (cluster.py).
2. Otherwise (these machines): the desired state is validated offline and committed to the GitOps
   target named in mlops.yml (gitops.py), recorded as "desired state committed, not applied", and the
   `production` alias stays where it was.
Both modes first render the chart with the real `helm template` (which checks the values against
values.schema.json) and validate every rendered object offline. The production state of a model is
its stable release (values-prod.yaml) and, while a canary runs, the canary release
(values-canary.yaml) that the stable release's HTTPRoute sends `canary.weight` percent to (state.py,
canary.py).
The image is pinned by digest when it was pushed to a registry (digest.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from ml_service.config import Settings
from ml_service.deploy import chart, cluster, gitops, records
from ml_service.deploy.cluster import cluster_mode
from ml_service.deploy.digest import PinnedImage, pinned_image
from ml_service.deploy.gitops import gitops_target
from ml_service.deploy.qa import DeployError
from ml_service.deploy.state import (KUBERNETES_VERSION, ProductionState, canary_release, chart_dir,
                                     desired_files, desired_values, image_reference, k8s_values, read_state,
                                     release_name, validate_offline, values_text)

# re-exported: what callers of this module have always imported from it
__all__ = ["DeployError", "ProductionResult", "ProductionState", "cluster_mode", "gitops_target", "deploy_prod",
           "desired_values", "commit_desired_state", "validate_offline", "release_name", "canary_release",
           "chart_dir", "desired_files", "k8s_values", "read_state", "values_text", "KUBERNETES_VERSION"]


@dataclass(frozen=True)
class ProductionResult:
    """What a production command did."""

    mode: str  # helm | gitops
    applied: bool
    message: str
    commit: str = ""
    values_file: str = ""


def commit_state(settings: Settings, state: ProductionState, who: str, message: str) -> tuple[str, str, str]:
    """Commit a model's production state to its GitOps target: (where the values file is, commit,
    committed|unchanged)."""
    model_name = state.stable["model"]["name"]
    repo, rel, branch = gitops_target(settings, model_name)
    try:
        files = desired_files(settings, state, rel)
    except chart.ChartError as exc:
        raise DeployError(f"the production state is invalid: {exc}") from None
    commit, result = gitops.commit_files(settings, model_name, files, message, who)
    where = f"{repo} (branch {branch}) {rel}" if branch else str(repo / rel)
    return where, commit, result


def commit_desired_state(settings: Settings, desired: dict, who: str, body: str = "") -> tuple[str, str, str]:
    """Commit values-prod.yaml and the rendered manifests.yaml beside it (no canary) to the GitOps target:
    (where the values file is, commit, committed|unchanged). body: the commit message's provenance lines."""
    subject = f"production: {desired['model']['name']} version {desired['model']['version']}"
    return commit_state(settings, ProductionState(desired), who, f"{subject}\n\n{body}" if body else subject)


def provenance(settings: Settings, values: dict, tags: dict, who: str) -> str:
    """The commit message body: model version, image (its digest when pinned), the pipeline run that built the
    model and the one that deploys it, and who approved; what is not known is said so, never invented."""
    image = values["image"]
    pinned = PinnedImage(image["repository"], str(image["tag"]), image.get("digest", ""))
    built_by = tags.get("BuildId") or "none recorded"
    if tags.get("BuildUri"):
        built_by += f" ({tags['BuildUri']})"
    deployed_by = settings.build_id or "none (run by hand)"
    if settings.build_uri:
        deployed_by += f" ({settings.build_uri})"
    return (f"Model: {values['model']['name']} version {values['model']['version']}\n"
            f"Image: {pinned.describe()}\n"
            f"Trained by pipeline run: {built_by}\n"
            f"Deployed by pipeline run: {deployed_by}\n"
            f"Approved by: {who or 'nobody recorded'}\n")


def deploy_to_cluster(settings: Settings, desired: dict, smoke_timeout: float) -> str:
    """The stable release on the cluster: upgrade, wait, smoke test through the Service, undone if it fails; the
    release name."""
    release = release_name(settings, desired["model"]["name"])
    cluster.apply(settings, release, values_text(desired, release), smoke_timeout)
    return release


def gitops_message(reason: str, what: str, where: str, commit: str, state: str) -> str:
    """What a GitOps-mode command reports: what was committed where, and that nothing was applied."""
    return (f"GitOps mode ({reason}): {what} validated offline and {state} in {where} (rendered manifests.yaml "
            f"beside it) at commit {commit[:12]}.\nNOTHING WAS APPLIED TO A CLUSTER; the 'production' alias was "
            "not moved.")


def deploy_prod(settings: Settings, ref: str, who: str = "", smoke_timeout: float = 120.0) -> ProductionResult:
    """Deploy a registered version to production (the stable release) in the mode this machine allows."""
    from ml_service.workspace import registry, tracking

    client = tracking.connect(settings)
    version = registry.resolve_version(client, ref)
    name, number = version.name, str(version.version)
    desired = desired_values(settings, name, number, pinned_image(settings, name, number))
    validate_offline(settings, desired)
    image = image_reference(desired)
    available, reason = cluster_mode()
    current = read_state(settings, name, available)
    if current is not None and current.canary is not None:
        raise DeployError(f"a canary of {name} version {current.canary['model']['version']} takes "
                          f"{current.weight}% of production: `mlops deploy promote` or `mlops deploy abort` it "
                          "before deploying another version")
    if available:
        try:
            release = deploy_to_cluster(settings, desired, smoke_timeout)
        except DeployError as exc:
            records.record(settings, "production", name, number, image, "", records.FAILED, "helm", detail=str(exc))
            raise
        records.record(settings, "production", name, number, image, "", records.LIVE, "helm", target=release)
        client.set_registered_model_alias(name, "production", number)
        return ProductionResult("helm", True, f"production now serves {name} version {number} (helm release "
                                              f"{release}, image {image}, smoke test passed); alias 'production' "
                                              "moved")
    values_file, commit, state = commit_desired_state(settings, desired, who,
                                                      provenance(settings, desired, dict(version.tags or {}), who))
    records.record(settings, "production", name, number, image, "", records.DESIRED, "gitops",
                   detail=f"desired state {state} at {commit[:12]}; not applied: {reason}", target=values_file)
    message = gitops_message(reason, f"desired state for {name} version {number} (image {image})", values_file,
                             commit, state)
    return ProductionResult("gitops", False, message, commit, values_file)
