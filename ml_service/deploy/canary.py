"""A canary that splits production traffic, then promote or abort it.

`mlops deploy prod --model NAME:VERSION --canary PERCENT` runs VERSION as the canary release
(<release>-canary) beside the stable release, whose Gateway API HTTPRoute sends PERCENT of the traffic
to the canary's Service (chart value canary.weight); the same command with the same version again
changes only the weight. `mlops deploy promote` moves all traffic: the stable release takes the
canary's image and model version, the route's weight goes to 0 and the canary release is removed.
`mlops deploy abort` sends all traffic back to the stable release and removes the canary. In GitOps
mode each step is one commit of the target (values-prod.yaml, values-canary.yaml, manifests.yaml);
on a cluster each is helm upgrades (and an uninstall). Every step is recorded in the deploy records.
The route needs a Gateway: mlops.yml `environments.production.values.route` (enabled, parentRefs).
"""
from __future__ import annotations

from ml_service.config import Settings
from ml_service.deploy import cluster, records
from ml_service.deploy.digest import pinned_image
from ml_service.deploy.cluster import cluster_mode
from ml_service.deploy.production import ProductionResult, commit_state, gitops_message, provenance
from ml_service.deploy.state import (ProductionState, canary_release, desired_values, image_reference, read_state,
                                     release_name, validate_offline, values_text)
from ml_service.deploy.qa import DeployError
from ml_service.errors import UsageError


class CanaryError(UsageError):
    """The canary step does not fit the production state (no stable release, no canary, no route...)."""


def _current(settings: Settings, model_name: str, in_cluster: bool) -> ProductionState:
    state = read_state(settings, model_name, in_cluster)
    if state is None:
        raise CanaryError(f"production has no stable release of {model_name} yet: deploy one first with "
                          f"`mlops deploy prod --model {model_name}:VERSION`")
    return state


def _without_canary(values: dict) -> dict:
    return {k: v for k, v in values.items() if k != "canary"}


def _version(values: dict) -> str:
    return str(values["model"]["version"])


def _apply(settings: Settings, state: ProductionState, before: ProductionState, smoke_timeout: float,
           smoke_stable: bool) -> None:
    """Bring the cluster from `before` to `state`: canary release first (smoke-tested), then the stable release,
    then an uninstall of a canary the state no longer has."""
    name = state.stable["model"]["name"]
    stable, canary = release_name(settings, name), canary_release(settings, name)
    if state.canary is not None and state.canary != before.canary:
        cluster.apply(settings, canary, values_text(state.canary, canary), smoke_timeout)
    try:
        cluster.apply(settings, stable, values_text(state.stable, stable), smoke_timeout if smoke_stable else None)
    except DeployError:
        if state.canary is not None and before.canary is None:
            cluster.uninstall(canary)  # the canary release this step installed: not left behind
        raise
    if state.canary is None and before.canary is not None:
        cluster.uninstall(canary)


def _finish(settings: Settings, state: ProductionState, before: ProductionState, available: bool, reason: str,
            who: str, subject: str, body: str, smoke_timeout: float, smoke_stable: bool) -> ProductionResult:
    """Validate the new state, then apply it (cluster) or commit it (GitOps)."""
    validate_offline(settings, state)
    if available:
        _apply(settings, state, before, smoke_timeout, smoke_stable)
        return ProductionResult("helm", True, f"{subject}: applied to the cluster with helm")
    where, commit, done = commit_state(settings, state, who, f"{subject}\n\n{body}")
    what = f"desired state ({subject.split(': ', 1)[1]})"
    return ProductionResult("gitops", False, gitops_message(reason, what, where, commit, done), commit, where)


def start_canary(settings: Settings, ref: str, percent: int, who: str = "",
                 smoke_timeout: float = 120.0) -> ProductionResult:
    """Run a registered version as the canary with `percent` of the production traffic."""
    from ml_service.workspace import registry, tracking

    if not 1 <= percent <= 100:
        raise CanaryError(f"--canary {percent}: the canary's share of the traffic is a percent from 1 to 100 "
                          "(0 is `mlops deploy abort`)")
    version = registry.resolve_version(tracking.connect(settings), ref)
    name, number = version.name, str(version.version)
    available, reason = cluster_mode()
    before = _current(settings, name, available)
    if not (before.stable.get("route") or {}).get("enabled"):
        raise CanaryError("a canary splits the traffic with the stable release's Gateway API HTTPRoute, and production "
                          "has no route: set environments.production.values.route (enabled: true, parentRefs: your "
                          "Gateway) in mlops.yml, deploy the stable version again, then start the canary")
    if _version(before.stable) == number:
        raise CanaryError(f"version {number} of {name} is the stable release already: a canary runs another version")
    if before.canary is not None and _version(before.canary) != number:
        raise CanaryError(f"a canary of {name} version {_version(before.canary)} runs already: `mlops deploy promote` "
                          "or `mlops deploy abort` it first (the same version again changes its weight)")
    canary = before.canary or {**desired_values(settings, name, number, pinned_image(settings, name, number)),
                               "canary": {"enabled": True}}
    stable = {**before.stable, "canary": {"weight": percent, "service": canary_release(settings, name)}}
    state = ProductionState(stable, canary)
    subject = (f"production: {name} canary version {number} at {percent}% "
               f"(stable version {_version(stable)} keeps {100 - percent}%)")
    body = provenance(settings, canary, dict(version.tags or {}), who)
    image = image_reference(canary)
    try:
        result = _finish(settings, state, before, available, reason, who, subject, body, smoke_timeout, False)
    except DeployError as exc:
        records.record(settings, "production", name, number, image, "", records.FAILED,
                       "helm" if available else "gitops", detail=str(exc), track=records.CANARY)
        raise
    status = records.LIVE if result.applied else records.DESIRED
    records.record(settings, "production", name, number, image, "", status, result.mode, track=records.CANARY,
                   detail=f"canary at {percent}% beside stable version {_version(stable)}"
                          + ("" if result.applied else f"; committed at {result.commit[:12]}, not applied: {reason}"),
                   target=canary_release(settings, name) if result.applied else result.values_file)
    return result


def _running_canary(settings: Settings, model_name: str, available: bool) -> ProductionState:
    state = _current(settings, model_name, available)
    if state.canary is None:
        raise CanaryError(f"no canary of {model_name} runs in production (start one with "
                          f"`mlops deploy prod --model {model_name}:VERSION --canary PERCENT`)")
    return state


def promote(settings: Settings, model_name: str, who: str = "", smoke_timeout: float = 120.0) -> ProductionResult:
    """All traffic to the canary's version: the stable release takes its image and model, the canary is removed."""
    from ml_service.workspace import tracking

    available, reason = cluster_mode()
    before = _running_canary(settings, model_name, available)
    canary, old = before.canary, _version(before.stable)
    stable = {**_without_canary(canary), "route": before.stable.get("route")} if before.stable.get("route") \
        else _without_canary(canary)
    state = ProductionState(stable)
    number = _version(stable)
    subject = f"production: {model_name} promote canary version {number} to stable (was version {old}), canary removed"
    client = tracking.connect(settings)
    tags = dict(client.get_model_version(model_name, number).tags or {})
    image = image_reference(stable)
    try:
        result = _finish(settings, state, before, available, reason, who, subject,
                         provenance(settings, stable, tags, who), smoke_timeout, True)
    except DeployError as exc:
        records.record(settings, "production", model_name, number, image, "", records.FAILED,
                       "helm" if available else "gitops", detail=f"promotion failed: {exc}")
        raise
    status = records.LIVE if result.applied else records.DESIRED
    note = "" if result.applied else f"; committed at {result.commit[:12]}, not applied: {reason}"
    target = release_name(settings, model_name) if result.applied else result.values_file
    records.record(settings, "production", model_name, number, image, "", status, result.mode,
                   detail=f"promoted from the canary (was version {old}){note}", target=target)
    records.record(settings, "production", model_name, number, image, "", records.REMOVED, result.mode,
                   track=records.CANARY, detail=f"promoted to stable{note}", target=target)
    if result.applied:
        client.set_registered_model_alias(model_name, "production", number)
    return result


def abort(settings: Settings, model_name: str, who: str = "") -> ProductionResult:
    """All traffic back to the stable release; the canary is removed."""
    available, reason = cluster_mode()
    before = _running_canary(settings, model_name, available)
    number, stable_version = _version(before.canary), _version(before.stable)
    state = ProductionState(_without_canary(before.stable))
    subject = (f"production: {model_name} abort canary version {number}: stable version {stable_version} takes all "
               "traffic, canary removed")
    deployed_by = settings.build_id or "none (run by hand)"
    body = (f"Model: {model_name} canary version {number} aborted ({image_reference(before.canary)})\n"
            f"Stable: version {stable_version}, image {image_reference(before.stable)}, now all traffic\n"
            f"Deployed by pipeline run: {deployed_by}\n"
            f"Aborted by: {who or 'nobody recorded'}\n")
    result = _finish(settings, state, before, available, reason, who, subject, body, 0, False)
    note = "" if result.applied else f"; committed at {result.commit[:12]}, not applied: {reason}"
    records.record(settings, "production", model_name, number, image_reference(before.canary), "", records.REMOVED,
                   result.mode, track=records.CANARY,
                   detail=f"aborted: all traffic back to stable version {stable_version}{note}",
                   target=canary_release(settings, model_name) if result.applied else result.values_file)
    return result
