"""The Helm chart through the real helm binary (`make install` pins it into .venv/bin): lint --strict,
template for every values file and every model project's desired state, schema refusals by helm,
package; every rendered object validated with kubernetes-validate --strict, the HTTPRoute of the
canary split against the Gateway API's published CRD schema (vendored). No cluster is needed."""
import json
import subprocess
import sys
import tarfile

import pytest
import yaml

from ml_service.config import load_settings
from ml_service.deploy import chart
from tests.conftest import ROOT

CHART = ROOT / "charts" / "scoring"
VALUES_FILES = sorted(CHART.glob("values*.yaml"))
SETTINGS = load_settings({"MLOPS_ROOT": str(ROOT)})


def by_kind(objects):
    return {o["kind"]: o for o in objects}


def test_the_pinned_helm_is_installed_and_found():
    done = chart.run_helm("version", "--short")
    assert done.returncode == 0 and done.stdout.startswith("v4.1.4"), done.stdout + done.stderr


def test_helm_lint_strict_passes_for_every_values_file():
    report = chart.lint(CHART, *VALUES_FILES[1:])
    assert "0 chart(s) failed" in report
    for values_file in VALUES_FILES:
        assert "0 chart(s) failed" in chart.lint(CHART, values_file)


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=[p.name for p in VALUES_FILES])
def test_every_values_file_renders_valid_kubernetes_objects(values_file):
    objects = chart.render(CHART, files=(values_file,))
    assert {"Deployment", "Service", "PodDisruptionBudget"} <= {o["kind"] for o in objects}
    chart.validate_objects(CHART, objects, "1.37")


def test_the_deployment_has_probes_limits_non_root_and_zero_unavailable():
    objects = by_kind(chart.render(CHART, files=(CHART / "values-prod.yaml",)))
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


@pytest.mark.parametrize("model", SETTINGS.models, ids=lambda m: m.project)
def test_each_projects_desired_state_renders_with_its_deployment_config(model):
    from ml_service.deploy.production import desired_values, release_name, validate_offline

    config = yaml.safe_load((model.folder / "scoring" / "deployment_config_k8s.yml").read_text())
    values, wanted = desired_values(SETTINGS, model.name, "3"), config["containerResourceRequirements"]
    assert float(values["resources"]["limits"]["cpu"].rstrip("m")) / 1000 == wanted["cpu"]
    assert values["resources"]["limits"]["memory"] == f"{wanted['memoryInGB']:g}Gi"
    assert values["autoscaling"]["maxReplicas"] == config["autoScaler"]["maxReplicas"]
    assert values["model"] == {"name": model.name, "version": "3"}
    release = release_name(SETTINGS, model.name)
    assert release.replace("-", "").isalnum()
    objects = by_kind(validate_offline(SETTINGS, values))  # helm template + kubernetes-validate --strict
    container = objects["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert objects["Deployment"]["metadata"]["name"] == release
    assert container["image"] == f"{values['image']['repository']}:3"
    assert container["resources"]["limits"] == values["resources"]["limits"]
    assert objects["HorizontalPodAutoscaler"]["spec"]["maxReplicas"] == config["autoScaler"]["maxReplicas"]


def test_the_canary_release_is_labelled_and_has_fixed_replicas():
    objects = by_kind(chart.render(CHART, release="scoring-canary", files=(CHART / "values-canary.yaml",)))
    assert "HorizontalPodAutoscaler" not in objects
    assert objects["Deployment"]["spec"]["replicas"] == 1
    assert objects["Deployment"]["spec"]["template"]["metadata"]["labels"]["mlops/track"] == "canary"
    assert objects["Service"]["metadata"]["name"] == "scoring-canary"


def routed(weight, release="scoring", *files):
    """The backendRefs of the rendered HTTPRoute (validated against the Gateway API CRD) for this canary weight."""
    objects = chart.render(CHART, {"canary": {"weight": weight}}, release,
                           files=(CHART / "values-prod.yaml", CHART / "values-route.yaml", *files))
    chart.validate_objects(CHART, objects, "1.37")
    routes = [o for o in objects if o["kind"] == "HTTPRoute"]
    return [(b["name"], b["weight"]) for b in routes[0]["spec"]["rules"][0]["backendRefs"]] if routes else None


def test_the_canary_weight_splits_the_traffic_of_the_stable_releases_httproute():
    assert routed(10) == [("scoring", 90), ("scoring-canary", 10)]
    assert routed(25, "scoring-m") == [("scoring-m", 75), ("scoring-m-canary", 25)]
    assert routed(100) == [("scoring", 0), ("scoring-canary", 100)]
    assert routed(0) == [("scoring", 100)]  # no canary: no backend for it
    assert routed(10, "scoring-canary", CHART / "values-canary.yaml") is None  # the canary release has no route
    route = by_kind(chart.render(CHART, files=(CHART / "values-route.yaml",)))["HTTPRoute"]
    assert route["spec"]["parentRefs"] == [{"name": "ml-gateway"}] and route["spec"]["hostnames"]
    assert "HTTPRoute" not in by_kind(chart.render(CHART, files=(CHART / "values-prod.yaml",)))  # off by default


def test_a_route_that_breaks_the_gateway_api_crd_is_refused():
    route = by_kind(chart.render(CHART, files=(CHART / "values-route.yaml",)))["HTTPRoute"]
    route["spec"]["rules"][0]["backendRefs"][0]["wieght"] = 90
    with pytest.raises(chart.ChartError, match=r"HTTPRoute/scoring .*spec\.rules\.0\.backendRefs\.0: .*'wieght'"):
        chart.validate_objects(CHART, [route], "1.37")
    with pytest.raises(chart.ChartError, match=r"values\.schema\.json:\n  canary\.weight: "):
        chart.render(CHART, {"canary": {"weight": 101}})


@pytest.mark.parametrize("example", sorted((CHART / "gitops").glob("*.yaml")), ids=lambda p: p.name)
def test_the_gitops_controller_examples_validate_and_point_at_the_committed_state(example):
    from ml_service.deploy.production import gitops_target

    objects = [o for o in yaml.safe_load_all(example.read_text()) if o]
    chart.validate_objects(CHART, objects, "1.37")  # against the published Argo CD / Flux CRDs
    _, values_file, _ = gitops_target(SETTINGS, "MODEL_NAME")  # the default layout of the GitOps target
    kinds = by_kind(objects)
    if "Application" in kinds:
        source = kinds["Application"]["spec"]["source"]
        assert f"{source['path']}/{source['directory']['include']}" == values_file.replace("values-prod", "manifests")
    else:
        spec = kinds["HelmRelease"]["spec"]["chart"]["spec"]
        assert spec["chart"] == "charts/scoring" and spec["valuesFiles"][-1] == values_file
        assert spec["sourceRef"]["name"] == kinds["GitRepository"]["metadata"]["name"]


def test_an_example_that_breaks_its_crd_is_refused():
    application = yaml.safe_load((CHART / "gitops" / "argocd-application.yaml").read_text())
    application["spec"]["syncPolicy"]["automated"]["prune"] = "yes"
    with pytest.raises(chart.ChartError, match=r"Application/scoring-model-name .*syncPolicy\.automated\.prune"):
        chart.validate_objects(CHART, [application], "1.37")


def test_the_chart_follows_the_conventions_labels_seccomp_startup_probe():
    objects = chart.render(CHART, files=(CHART / "values-prod.yaml",))
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == "scoring" and labels["app.kubernetes.io/managed-by"] == "Helm"
    pod = by_kind(objects)["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["containers"][0]["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert pod["containers"][0]["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_helm_test_runs_the_smoke_test_script_through_the_service_with_the_key():
    objects = by_kind(chart.render(CHART, release="scoring-m", files=(CHART / "values-prod.yaml",)))
    pod = objects["Pod"]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    container = pod["spec"]["containers"][0]
    assert container["command"] == ["python", "-c", (CHART / "files" / "smoke_test.py").read_text()]
    env = {e["name"]: e for e in container["env"]}
    assert env["SCORING_URL"]["value"] == "http://scoring-m:80"
    assert env["SCORING_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "scoring-keys", "key": "keys"}
    selector = objects["Service"]["spec"]["selector"]
    assert not selector.items() <= pod["metadata"]["labels"].items()  # the Service never routes to it
    text = chart.render_text(CHART, release="scoring-m", skip_tests=True)
    assert "kind: Pod\n" not in text and "kind: Deployment\n" in text  # what GitOps commits: no test hook


def test_values_schema_covers_every_value():
    schema = json.loads((CHART / "values.schema.json").read_text())

    def walk(values, node, where):
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]] if "$ref" in node else node
        assert node.get("additionalProperties") is False, f"{where or '(root)'} admits unknown keys"
        for key, value in values.items():
            assert key in node["properties"], f"{where}{key} is not in values.schema.json"
            sub = node["properties"][key]
            if isinstance(value, dict) and ("properties" in sub or "$ref" in sub):
                walk(value, sub, f"{where}{key}.")

    walk(chart.load_values(CHART), schema, "")


def test_the_optional_service_monitor_and_network_policy_render_and_validate():
    extras = {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
              "networkPolicy": {"enabled": True, "from": [{"namespaceSelector": {"matchLabels": {"team": "gw"}}}]}}
    objects = chart.render(CHART, extras)
    chart.validate_objects(CHART, objects, "1.37")  # NetworkPolicy: kubernetes-validate; ServiceMonitor: its CRD
    kinds = by_kind(objects)
    selector = kinds["Service"]["spec"]["selector"]
    assert kinds["ServiceMonitor"]["spec"]["selector"]["matchLabels"] == selector
    assert kinds["ServiceMonitor"]["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s"}]
    assert kinds["NetworkPolicy"]["spec"]["podSelector"]["matchLabels"] == selector
    assert kinds["NetworkPolicy"]["spec"]["ingress"][0]["from"] == extras["networkPolicy"]["from"]
    assert not {"ServiceMonitor", "NetworkPolicy"} & set(by_kind(chart.render(CHART)))  # off by default


def test_a_values_mapping_is_merged_over_values_yaml_as_load_values_does():
    values = chart.load_values(CHART, CHART / "values-canary.yaml")
    assert chart.render(CHART, values) == chart.render(CHART, files=(CHART / "values-canary.yaml",))


@pytest.mark.parametrize("bad, where", [
    ({"image": {"repository": "x", "tag": "has space"}}, "image.tag"),
    ({"model": {"name": "m", "version": "latest"}}, "model.version"),
    ({"autoscaling": {"maxReplicas": 0}}, "autoscaling.maxReplicas"),
    ({"shutdown": {"preStopSeconds": "5"}}, "shutdown.preStopSeconds"),
    ({"resources": {"limits": {"cpu": "lots"}}}, "resources.limits.cpu"),
    ({"auth": {"secretName": "Not A Secret"}}, "auth.secretName"),
    ({"replicas": 3}, "(root)"),  # a value the chart does not know (replicaCount is)
])
def test_helm_refuses_invalid_values_naming_the_key(bad, where):
    key = where.replace(".", "[.]").replace("(", r"\(").replace(")", r"\)")
    with pytest.raises(chart.ChartError, match=rf"values\.schema\.json:\n  {key}: "):
        chart.render(CHART, bad)


def test_a_template_error_is_reported_with_helms_message(tmp_path):
    broken = tmp_path / "scoring"
    subprocess.run(["cp", "-r", str(CHART), str(broken)], check=True)
    (broken / "templates" / "broken.yaml").write_text("kind: {{ .Values.nothing.here }}\n")
    with pytest.raises(chart.ChartError, match=r"(?s)helm template scoring failed: .*nil pointer evaluating"):
        chart.render(broken)
    with pytest.raises(chart.ChartError, match="helm lint --strict scoring"):
        chart.lint(broken)


def test_helm_package_produces_the_chart_archive(tmp_path):
    archive = chart.package(CHART, tmp_path / "dist")
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert archive.name == f"scoring-{meta['version']}.tgz" and archive.is_file()
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {"scoring/Chart.yaml", "scoring/values.schema.json", "scoring/templates/deployment.yaml"} <= names
    assert not any(n.startswith(("scoring/schemas/", "scoring/gitops/")) for n in names)  # .helmignore


def test_a_client_side_dry_run_installs_nothing_and_needs_no_cluster(monkeypatch, tmp_path):
    config = tmp_path / "kubeconfig"  # a cluster that does not answer: a closed port on 127.0.0.1
    config.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "none",
        "clusters": [{"name": "none", "cluster": {"server": "https://127.0.0.1:1"}}],
        "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}],
        "users": [{"name": "none", "user": {"token": "none"}}]}))
    monkeypatch.setenv("KUBECONFIG", str(config))
    dry = chart.run_helm("install", "scoring", str(CHART), "-f", str(CHART / "values-prod.yaml"), "--dry-run=client")
    assert dry.returncode == 0 and "STATUS: pending-install" in dry.stdout and "helm test scoring" in dry.stdout
    real = chart.run_helm("status", "scoring")  # the real helm against the unreachable cluster
    assert real.returncode == 1 and "kubernetes cluster unreachable" in real.stderr


def test_a_missing_helm_says_to_run_make_install(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("MLOPS_HELM", raising=False)
    with pytest.raises(chart.HelmMissing, match="make install"):
        chart.render(CHART)


def test_the_github_workflow_validates_against_its_schema():
    result = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                             str(ROOT / ".github" / "workflows" / "release.yml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def pod_template(values=None):
    return by_kind(chart.render(CHART, values, files=(CHART / "values-prod.yaml",)))["Deployment"]["spec"]["template"]


def test_checksum_config_rolls_the_pods_when_the_config_or_the_secret_name_changes():
    def checksum(values=None):
        return pod_template(values)["metadata"]["annotations"]["checksum/config"]

    base = checksum()
    assert len(base) == 64 and base == checksum()  # rendered by the real helm, stable for the same values
    assert checksum({"auth": {"secretName": "scoring-keys-2024"}}) != base
    assert checksum({"auth": {"secretKey": "other"}}) != base
    assert checksum({"shutdown": {"drainSeconds": 3}}) != base
    assert checksum({"workers": 2}) != base
    assert checksum({"image": {"tag": "7"}}) == base  # the image is in the pod template already


def test_an_image_digest_pins_the_deployment_and_the_test_pod():
    digest = "sha256:" + "0123456789abcdef" * 4
    objects = by_kind(chart.render(CHART, {"image": {"repository": "127.0.0.1:5000/mlops/m", "digest": digest}},
                                   files=(CHART / "values-prod.yaml",)))
    chart.validate_objects(CHART, list(objects.values()), "1.37")
    image = objects["Deployment"]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"127.0.0.1:5000/mlops/m@{digest}"
    assert objects["Pod"]["spec"]["containers"][0]["image"] == image
    assert pod_template()["spec"]["containers"][0]["image"] == "mlops/model:1"  # no digest: the tag
    with pytest.raises(chart.ChartError, match=r"values\.schema\.json:\n  image\.digest: "):
        chart.render(CHART, {"image": {"digest": "latest"}})


def test_in_a_mesh_the_same_route_attaches_to_the_service_gamma():
    """The alternative for meshes (Istio, Linkerd, ... through the Gateway API's GAMMA): the HTTPRoute's parent is
    the stable release's Service, so calls inside the cluster are split too; valid against the CRD."""
    mesh = {"route": {"enabled": True, "parentRefs": [{"group": "", "kind": "Service", "name": "scoring", "port": 80}]},
            "canary": {"weight": 30}}
    objects = chart.render(CHART, mesh, files=(CHART / "values-prod.yaml",))
    chart.validate_objects(CHART, objects, "1.37")
    route = by_kind(objects)["HTTPRoute"]
    assert route["spec"]["parentRefs"] == mesh["route"]["parentRefs"]
    assert route_weights_of(route) == [("scoring", 70), ("scoring-canary", 30)]
    mesh["route"]["parentRefs"][0]["kind"] = "Service!"  # not a kind name: the CRD refuses it
    broken = by_kind(chart.render(CHART, mesh))["HTTPRoute"]
    with pytest.raises(chart.ChartError, match=r"HTTPRoute/scoring does not match its CRD.*parentRefs\.0\.kind"):
        chart.validate_objects(CHART, [broken], "1.37")


def route_weights_of(route):
    return [(b["name"], b["weight"]) for b in route["spec"]["rules"][0]["backendRefs"]]
