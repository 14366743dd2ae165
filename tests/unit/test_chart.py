"""The Helm chart: values against values.schema.json, rendered manifests against Kubernetes' schemas."""
import shutil
import subprocess
import sys

import kubernetes_validate
import pytest
import yaml

from ml_service.config import load_settings
from ml_service.deploy import chart
from tests.conftest import ROOT

CHART = ROOT / "charts" / "scoring"
VALUES_FILES = sorted(CHART.glob("values*.yaml"))


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=[p.name for p in VALUES_FILES])
def test_every_values_file_validates_and_renders_valid_kubernetes_objects(values_file):
    values = chart.load_values(CHART, values_file)
    chart.validate_values(CHART, values)
    objects = chart.render(CHART, values)
    assert {"Deployment", "Service", "PodDisruptionBudget"} <= {o["kind"] for o in objects}
    for obj in objects:
        kubernetes_validate.validate(obj, "1.37", strict=True)


def test_the_deployment_has_probes_limits_non_root_and_zero_unavailable():
    objects = {o["kind"]: o for o in chart.render(CHART, chart.load_values(CHART, CHART / "values-prod.yaml"))}
    spec = objects["Deployment"]["spec"]
    container = spec["template"]["spec"]["containers"][0]
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert spec["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["resources"]["limits"] == {"cpu": "500m", "memory": "2Gi"}
    assert any(e["name"] == "MLOPS_SCORING_KEYS" and "secretKeyRef" in e["valueFrom"] for e in container["env"]
               if "valueFrom" in e)  # auth on by default in production
    hpa = objects["HorizontalPodAutoscaler"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (1, 3)
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    assert "replicas" not in spec  # the HPA owns the replica count


@pytest.mark.parametrize("model", load_settings({"MLOPS_ROOT": str(ROOT)}).models, ids=lambda m: m.project)
def test_each_projects_desired_state_carries_its_deployment_config(model):
    from ml_service.deploy.production import desired_values, release_name

    settings = load_settings({"MLOPS_ROOT": str(ROOT)})
    config = yaml.safe_load((model.folder / "scoring" / "deployment_config_k8s.yml").read_text())
    values, wanted = desired_values(settings, model.name, "3"), config["containerResourceRequirements"]
    assert float(values["resources"]["limits"]["cpu"].rstrip("m")) / 1000 == wanted["cpu"]
    assert values["resources"]["limits"]["memory"] == f"{wanted['memoryInGB']:g}Gi"
    assert values["autoscaling"]["maxReplicas"] == config["autoScaler"]["maxReplicas"]
    assert values["model"] == {"name": model.name, "version": "3"}
    merged = chart.merge_values(chart.load_values(CHART), values)
    chart.validate_values(CHART, merged)
    assert len(chart.render(CHART, merged, release=release_name(settings, model.name))) >= 3
    assert release_name(settings, model.name).replace("-", "").isalnum()


def test_the_canary_release_is_labelled_and_has_fixed_replicas():
    objects = {o["kind"]: o for o in chart.render(CHART, chart.load_values(CHART, CHART / "values-canary.yaml"),
                                                  release="scoring-canary")}
    assert "HorizontalPodAutoscaler" not in objects
    assert objects["Deployment"]["spec"]["replicas"] == 1
    assert objects["Deployment"]["spec"]["template"]["metadata"]["labels"]["mlops/track"] == "canary"
    assert objects["Service"]["metadata"]["name"] == "scoring-canary"


@pytest.mark.parametrize("bad, where", [
    ({"image": {"repository": "x", "tag": "has space"}}, "image.tag"),
    ({"model": {"name": "m", "version": "latest"}}, "model.version"),
    ({"autoscaling": {"maxReplicas": 0}}, "autoscaling.maxReplicas"),
])
def test_invalid_values_are_refused_naming_the_key(bad, where):
    with pytest.raises(chart.ChartError, match=where.replace(".", r"\.")):
        chart.validate_values(CHART, chart.merge_values(chart.load_values(CHART), bad))


def test_the_renderer_refuses_what_it_does_not_support():
    with pytest.raises(chart.ChartError, match="outside the supported subset"):
        chart.render_template("{{ .Values.a | b64enc }}", {"Values": {"a": "x"}})
    with pytest.raises(chart.ChartError, match="not closed"):
        chart.render_template("{{- if .Values.a }}x", {"Values": {"a": True}})
    with pytest.raises(chart.ChartError, match="no value .Values.missing"):
        chart.render_template("{{ .Values.missing }}", {"Values": {}})


@pytest.mark.skipif(shutil.which("helm") is None, reason="helm is not installed on this machine (it cannot be here)")
def test_helm_lint_and_template_agree_with_the_offline_renderer(tmp_path):
    assert subprocess.run(["helm", "lint", str(CHART)], capture_output=True).returncode == 0
    out = subprocess.run(["helm", "template", "scoring", str(CHART), "-f", str(CHART / "values-prod.yaml")],
                         capture_output=True, text=True, check=True).stdout
    helm_objects = [d for d in yaml.safe_load_all(out) if d]
    ours = chart.render(CHART, chart.load_values(CHART, CHART / "values-prod.yaml"))
    assert sorted(o["kind"] for o in helm_objects) == sorted(o["kind"] for o in ours)


def test_the_github_workflow_validates_against_its_schema():
    result = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                             str(ROOT / ".github" / "workflows" / "release.yml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
