"""The production state of a model: the chart values of its stable release and, while a canary runs, of its
canary release; how they are built (workspace values, the model project's deployment config, the image),
rendered and validated offline with the real helm, written as files for a GitOps target, and read back
from that target or from the cluster (`helm get values`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import yaml

from ml_service.config import Settings
from ml_service.deploy import chart, cluster, gitops
from ml_service.deploy.digest import PinnedImage
from ml_service.deploy.gitops import for_model, gitops_target, production_config
from ml_service.deploy.image import image_repository
from ml_service.deploy.qa import DeployError
from ml_service.sections import thawed

KUBERNETES_VERSION = "1.37"


@dataclass(frozen=True)
class ProductionState:
    """The chart values of a model's stable release and, while a canary runs, of its canary release."""

    stable: dict
    canary: dict | None = None
    source: dict = field(default_factory=dict, compare=False)  # where it was read: commit, time, subject

    @property
    def weight(self) -> int:
        """Percent of the traffic the stable release's route sends to the canary (0 without one)."""
        return int((self.stable.get("canary") or {}).get("weight") or 0) if self.canary else 0


def chart_dir(settings: Settings) -> Path:
    """The scoring chart."""
    return settings.root / "charts" / "scoring"


def release_name(settings: Settings, model_name: str) -> str:
    """The helm release of a model: environments.production.release ({model} allowed), as a DNS label."""
    template = production_config(settings).release
    name = re.sub(r"[^a-z0-9-]+", "-", for_model(template, model_name).lower()).strip("-")
    return name[:53].rstrip("-")  # helm's limit for a release name


def canary_release(settings: Settings, model_name: str) -> str:
    """The canary release of a model: <release>-canary, within helm's 53 characters."""
    return release_name(settings, model_name)[:46].rstrip("-") + "-canary"


def image_reference(values: dict) -> str:
    """repository@digest when the values pin one, else repository:tag."""
    image = values["image"]
    return f"{image['repository']}@{image['digest']}" if image.get("digest") else \
        f"{image['repository']}:{image['tag']}"


def platform_values(settings: Settings) -> dict:
    """Chart values every production release of this workspace gets: environments.production.values in mlops.yml
    (the Gateway route, auth, ServiceMonitor, ...)."""
    return thawed(production_config(settings).values)  # checked to be a mapping by load_settings


def desired_values(settings: Settings, model_name: str, version: str, image: PinnedImage | None = None) -> dict:
    """Chart values for the new image and model version (what values-prod.yaml holds): the workspace's production
    values, the resources and autoscaling of the model project's scoring/deployment_config_k8s.yml, the image
    (by digest when pinned) and the model version."""
    image = image or PinnedImage(image_repository(settings, model_name), str(version))
    values = dict(platform_values(settings))
    settings = settings.for_registered(model_name)
    if settings.models and settings.model.name == model_name:
        values = chart.merge_values(values, k8s_values(settings.model.folder / "scoring" / "deployment_config_k8s.yml"))
    pinned = {"repository": image.repository, "tag": image.tag, **({"digest": image.digest} if image.digest else {})}
    return {"image": pinned, "model": {"name": model_name, "version": str(version)},
            **{k: v for k, v in values.items() if k not in ("image", "model")}}


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


def _state(desired: dict | ProductionState) -> ProductionState:
    return desired if isinstance(desired, ProductionState) else ProductionState(desired)


def releases(settings: Settings, state: ProductionState) -> list[tuple[str, dict]]:
    """(helm release, values) of each release of the state: the stable one, then the canary if any."""
    name = state.stable["model"]["name"]
    pairs = [(release_name(settings, name), state.stable)]
    if state.canary is not None:
        pairs.append((canary_release(settings, name), state.canary))
    return pairs


def validate_offline(settings: Settings, desired: dict | ProductionState) -> list[dict]:
    """Render each release with `helm template` (values checked against values.schema.json by helm), then every
    object with kubernetes-validate --strict (custom resources: their vendored CRD schema); the objects."""
    objects: list[dict] = []
    try:
        for release, values in releases(settings, _state(desired)):
            rendered = chart.render(chart_dir(settings), values, release=release)
            chart.validate_objects(chart_dir(settings), rendered, KUBERNETES_VERSION)
            objects += rendered
    except chart.ChartError as exc:
        raise DeployError(f"the production state is invalid: {exc}") from None
    return objects


def values_text(values: dict, release: str) -> str:
    """A values file with a header saying what it is and how to apply it."""
    return ("# Desired production state, written by `mlops deploy prod`.\n"
            f"# Apply with: helm upgrade --install {release} charts/scoring -f <this file>, or a GitOps controller.\n"
            + yaml.safe_dump(values, sort_keys=False))


def state_paths(values_rel: str) -> tuple[str, str, str]:
    """(stable values, canary values, rendered manifests) of a model's desired state in the GitOps target."""
    folder = PurePosixPath(values_rel).parent
    return values_rel, str(folder / "values-canary.yaml"), str(folder / "manifests.yaml")


def desired_files(settings: Settings, desired: dict | ProductionState, values_rel: str) -> dict[str, str | None]:
    """What a GitOps controller needs, by path in the target: the stable values file, the canary's beside it (None:
    removed, no canary), and manifests.yaml with every object `helm template` renders for both releases."""
    state = _state(desired)
    stable_rel, canary_rel, manifests_rel = state_paths(values_rel)
    texts, commands = [], []
    for release, values in releases(settings, state):
        texts.append(chart.render_text(chart_dir(settings), values, release=release, skip_tests=True))
        commands.append(f"`helm template {release} charts/scoring -f "
                        f"{'values-canary.yaml' if values is state.canary else 'values-prod.yaml'}`")
    header = (f"# Rendered by {' and '.join(commands)} for `mlops deploy`;\n"
              "# validated offline (values.schema.json, kubernetes-validate --strict, vendored CRDs). Apply with "
              "kubectl or a GitOps controller.\n")
    stable_release, _ = releases(settings, state)[0]
    canary_text = None
    if state.canary is not None:
        canary_text = values_text(state.canary, canary_release(settings, state.stable["model"]["name"]))
    return {stable_rel: values_text(state.stable, stable_release), canary_rel: canary_text,
            manifests_rel: header + "---\n".join(texts)}


def read_state(settings: Settings, model_name: str, in_cluster: bool) -> ProductionState | None:
    """The production state of a model as the target holds it: what helm applied (cluster mode) or the last
    commit of the GitOps target; None when there is none."""
    if in_cluster:
        stable = cluster.applied_values(release_name(settings, model_name))
        if not stable:
            return None
        canary = cluster.applied_values(canary_release(settings, model_name)) or None
        return ProductionState(stable, canary, {"cluster": "helm get values"})
    _, values_rel, _ = gitops_target(settings, model_name)
    stable_rel, canary_rel, manifests_rel = state_paths(values_rel)
    text, commit = gitops.read(settings, model_name, stable_rel)
    if text is None:
        return None
    canary_text, _ = gitops.read(settings, model_name, canary_rel)
    try:
        stable = yaml.safe_load(text)
        canary = yaml.safe_load(canary_text) if canary_text else None
    except yaml.YAMLError as exc:
        raise DeployError(f"the GitOps target's {stable_rel} of {model_name} is not YAML: {exc}") from None
    own = gitops.last_commit(settings, model_name, commit, [stable_rel, canary_rel, manifests_rel])
    return ProductionState(stable, canary, gitops.commit_info(settings, model_name, own))
