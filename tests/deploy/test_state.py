"""The production state of a model (state.py): helm release names, the chart values a version gets (which
source wins), the canary's share, and what a GitOps commit holds. In-process; the property tests run over
every model name Hypothesis can think of."""
from __future__ import annotations

import dataclasses
import re

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ml_service.deploy import state
from ml_service.deploy.digest import PinnedImage
from ml_service.config import ConfigError
from ml_service.deploy.qa import DeployError
from ml_service.sections import environments_from
from tests.deploy import test_production as production_tests

project = production_tests.project  # a project root of its own: mlops.yml and a copy of the chart
NAME = production_tests.NAME
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
HELM_LIMIT = 53


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """Settings of a project root with an mlops.yml and nothing else."""
    from ml_service.config import load_settings

    root = tmp_path_factory.mktemp("state-root")
    (root / "mlops.yml").write_text(f"models:\n  - {{project: proj, name: {NAME}}}\n")
    return load_settings({"MLOPS_ROOT": str(root), "MLOPS_STATE_DIR": str(root / "state")})


def with_production(settings, **config):
    return dataclasses.replace(settings, environments=environments_from({"production": config}))


@settings(max_examples=300, deadline=None)
@given(name=st.text(min_size=1, max_size=120).filter(lambda n: re.search("[A-Za-z0-9]", n)),
       template=st.sampled_from(["", "scoring-{model}", "{model}", "Team_Prod-{model}-svc"]))
def test_release_names_are_dns_labels_helm_accepts_and_the_canary_differs(plain, name, template):
    """Any registered model name with a letter or digit (MLflow allows far more than a DNS label does)."""
    settings = with_production(plain, release=template) if template else plain
    stable, canary = state.release_name(settings, name), state.canary_release(settings, name)
    for release in (stable, canary):
        assert len(release) <= HELM_LIMIT and DNS_LABEL.match(release), release
    assert canary.endswith("-canary") and canary != stable
    assert canary.startswith(stable[:46].rstrip("-"))


def test_a_release_name_keeps_the_model_readable_and_cuts_at_helms_limit(plain):
    assert state.release_name(plain, "Diabetes_Regression_Model") == "scoring-diabetes-regression-model"
    long = state.release_name(plain, "m" * 80)
    assert long == ("scoring-" + "m" * 80)[:HELM_LIMIT] and len(long) == HELM_LIMIT
    assert state.release_name(with_production(plain, release="prod-{model}"), "a.b") == "prod-a-b"
    assert state.canary_release(plain, "m" * 80) == long[:46] + "-canary"


def test_the_pinned_image_and_the_version_win_over_values_of_the_same_name_in_mlops_yml(plain):
    platform = {"image": {"repository": "evil/image", "tag": "latest"}, "model": {"name": "x", "version": "0"},
                "route": {"enabled": True}, "replicaCount": 3}
    pinned = PinnedImage("reg/m", "4", "sha256:" + "b" * 64)
    values = state.desired_values(with_production(plain, values=platform), NAME, "4", pinned)
    assert values["image"] == {"repository": "reg/m", "tag": "4", "digest": "sha256:" + "b" * 64}
    assert values["model"] == {"name": NAME, "version": "4"}
    assert values["route"] == {"enabled": True} and values["replicaCount"] == 3
    unpinned = state.desired_values(plain, NAME, "5")
    assert unpinned["image"] == {"repository": f"mlops/{NAME}", "tag": "5"}  # no registry: the tag, no digest
    assert state.image_reference(values) == "reg/m@sha256:" + "b" * 64
    assert state.image_reference(unpinned) == f"mlops/{NAME}:5"


def test_the_projects_deployment_config_wins_over_the_workspaces_production_values(plain):
    folder = plain.root / "proj" / "scoring"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "deployment_config_k8s.yml").write_text(yaml.safe_dump({
        "containerResourceRequirements": {"cpu": 0.25, "memoryInGB": 1.5},
        "autoScaler": {"minReplicas": 2, "maxReplicas": 6, "targetUtilization": 55}}))
    platform = {"resources": {"requests": {"cpu": "4", "memory": "64Gi"}, "limits": {"cpu": "4"}},
                "autoscaling": {"enabled": False, "minReplicas": 9}, "route": {"enabled": True}}
    try:
        values = state.desired_values(with_production(plain, values=platform), NAME, "1")
        resources = {"cpu": "250m", "memory": "1.5Gi"}
        assert values["resources"] == {"requests": resources, "limits": resources}
        assert values["autoscaling"] == {"enabled": True, "minReplicas": 2, "maxReplicas": 6,
                                         "targetCPUUtilizationPercentage": 55}
        assert values["route"] == {"enabled": True}  # what the project does not set, the workspace does
        other = state.desired_values(with_production(plain, values=platform), "another_model", "1")
        assert other["resources"] == platform["resources"]  # another model does not take this project's config
    finally:
        (folder / "deployment_config_k8s.yml").unlink()


def test_a_deployment_config_without_numbers_is_an_error_naming_the_file(tmp_path):
    assert state.k8s_values(tmp_path / "missing.yml") == {}
    bad = tmp_path / "deployment_config_k8s.yml"
    bad.write_text("containerResourceRequirements: {cpu: lots}\n")
    with pytest.raises(DeployError, match="deployment_config_k8s.yml: cannot read containerResourceRequirements"):
        state.k8s_values(bad)
    bad.write_text("containerResourceRequirements: {cpu: 1, memoryInGB: 2}\n")
    assert "autoscaling" not in state.k8s_values(bad)


def test_platform_values_must_be_a_mapping(plain):
    with pytest.raises(ConfigError, match=r"mlops.yml: environments.production.values: expected a mapping"):
        with_production(plain, values=["route"])  # refused where mlops.yml is read, before any deploy


def test_the_canary_share_is_the_stable_routes_weight_and_nothing_without_a_canary():
    stable = {"model": {"name": NAME, "version": "1"}, "canary": {"weight": 30}}
    assert state.ProductionState(stable, {"model": {"name": NAME, "version": "2"}}).weight == 30
    assert state.ProductionState(stable).weight == 0  # a weight left in the values with no canary release
    assert state.ProductionState({"model": {}}, {"model": {}}).weight == 0


def test_the_canary_and_the_manifests_live_beside_the_stable_values():
    assert state.state_paths("production/m/values-prod.yaml") == (
        "production/m/values-prod.yaml", "production/m/values-canary.yaml", "production/m/manifests.yaml")
    assert state.state_paths("m.yaml") == ("m.yaml", "values-canary.yaml", "manifests.yaml")


@pytest.mark.integration
def test_a_state_without_a_canary_removes_the_canary_file_and_renders_one_release(project):
    desired = state.desired_values(project, NAME, "1")
    files = state.desired_files(project, desired, f"production/{NAME}/values-prod.yaml")
    assert files[f"production/{NAME}/values-canary.yaml"] is None  # removed by the commit
    objects = [o for o in yaml.safe_load_all(files[f"production/{NAME}/manifests.yaml"]) if o]
    assert {o["metadata"]["name"] for o in objects if o["kind"] == "Deployment"} == {state.release_name(project, NAME)}
    assert not [o for o in objects if o.get("metadata", {}).get("annotations", {}).get("helm.sh/hook")]
    assert yaml.safe_load(files[f"production/{NAME}/values-prod.yaml"]) == desired
