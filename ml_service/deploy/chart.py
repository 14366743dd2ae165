"""The Helm chart in charts/scoring through the real helm binary: render, lint, package.

helm is the only renderer: `helm template` renders the chart (and checks the values against
values.schema.json on the way), `helm lint --strict` lints it, `helm package` packages it.
`make install` puts the pinned helm into the virtual environment (environment_setup/helm.sh);
helm_binary() finds it there, next to this Python, else on PATH. validate_objects() checks what
helm rendered offline: core kinds with kubernetes-validate --strict, custom resources (the Gateway
API's HTTPRoute, the GitOps examples' Argo CD Application and Flux HelmRelease) against their
published CRD schemas, vendored in the chart's schemas/ folder.
"""
from __future__ import annotations

import os
import functools
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from ml_service import env as envvars
from ml_service.errors import MLOpsError

SCHEMA_PROBLEM = re.compile(r"^- at '(?P<pointer>[^']*)': (?P<message>.*)$", re.MULTILINE)
# custom resources the chart renders, or its GitOps examples hold -> (published CRD vendored in the chart, version)
CRD_SCHEMAS = {
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): ("schemas/gateway.networking.k8s.io_httproutes.yaml", "v1"),
    ("argoproj.io/v1alpha1", "Application"): ("schemas/argoproj.io_applications.yaml", "v1alpha1"),
    ("helm.toolkit.fluxcd.io/v2", "HelmRelease"): ("schemas/helm.toolkit.fluxcd.io_helmreleases.yaml", "v2"),
    ("source.toolkit.fluxcd.io/v1", "GitRepository"): ("schemas/source.toolkit.fluxcd.io_gitrepositories.yaml", "v1"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"): ("schemas/monitoring.coreos.com_servicemonitors.yaml", "v1"),
}


class ChartError(MLOpsError):
    """The chart cannot be rendered, linted or packaged, or its values are invalid; the message says where."""


class HelmMissing(ChartError):
    """No helm binary in the virtual environment or on PATH."""


def tool_binary(name: str) -> str | None:
    """A cluster tool (helm, kubectl): MLOPS_<NAME> if set, else the one next to this Python
    (what `make install` puts there), else the one on PATH; None when there is none."""
    chosen = {"helm": envvars.MLOPS_HELM, "kubectl": envvars.MLOPS_KUBECTL}[name].get()
    if chosen:
        return chosen
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def helm_binary() -> str:
    """The helm binary; HelmMissing saying how to install it when there is none."""
    found = tool_binary("helm")
    if found is None:
        raise HelmMissing(f"no helm binary in {Path(sys.executable).parent} or on PATH: run `make install` "
                          "(environment_setup/helm.sh installs the pinned helm into .venv/bin)")
    return found


def run_helm(*args: str) -> subprocess.CompletedProcess:
    """helm with these arguments, output captured as text."""
    return subprocess.run([helm_binary(), *args], capture_output=True, text=True)


def rollback_flag() -> str:
    """The flag for "roll back a failed upgrade": --rollback-on-failure (helm 4), --atomic (helm 3)."""
    version = run_helm("version", "--short").stdout.strip()
    return "--atomic" if version.startswith("v3.") else "--rollback-on-failure"


def load_values(chart: Path, *files: Path) -> dict:
    """values.yaml merged with the given files (later files win, mappings merged deeply), as helm merges them."""
    values = yaml.safe_load((chart / "values.yaml").read_text()) or {}
    for file in files:
        values = merge_values(values, yaml.safe_load(Path(file).read_text()) or {})
    return values


def merge_values(base: dict, extra: dict) -> dict:
    """base with extra merged in: mappings deeply, anything else replaced."""
    merged = dict(base)
    for key, value in extra.items():
        both_mappings = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = merge_values(merged[key], value) if both_mappings else value
    return merged


def helm_error(what: str, stderr: str) -> ChartError:
    """A ChartError from helm's stderr; schema problems are listed by key (image.tag), as in values files."""
    problems = [f"  {m['pointer'].strip('/').replace('/', '.') or '(root)'}: {m['message']}"
                for m in SCHEMA_PROBLEM.finditer(stderr)]
    if problems and "values don't meet the specifications of the schema" in stderr:
        return ChartError(f"{what}: values do not match values.schema.json:\n" + "\n".join(problems))
    return ChartError(f"{what} failed: {stderr.strip()[-2000:]}")


def _with_values(values: dict | None, folder: str) -> list[str]:
    """`-f FILE` for a values mapping (written to a file in folder), or nothing."""
    if values is None:
        return []
    path = Path(folder) / "values.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return ["-f", str(path)]


def render_text(chart: Path, values: dict | None = None, release: str = "scoring",
                files: tuple[Path, ...] = (), skip_tests: bool = False) -> str:
    """`helm template`: the manifests as helm renders them, for values.yaml, the files, then the mapping;
    skip_tests leaves out the `helm test` hooks (what a GitOps controller should apply)."""
    file_args = [arg for file in files for arg in ("-f", str(file))] + (["--skip-tests"] if skip_tests else [])
    with tempfile.TemporaryDirectory() as folder:
        done = run_helm("template", release, str(chart), *file_args, *_with_values(values, folder))
    if done.returncode != 0:
        raise helm_error(f"helm template {chart.name}", done.stderr)
    return done.stdout


def render(chart: Path, values: dict | None = None, release: str = "scoring",
           files: tuple[Path, ...] = ()) -> list[dict]:
    """Every Kubernetes object `helm template` renders for these values (schema checked by helm)."""
    text = render_text(chart, values, release, files)
    return [document for document in yaml.safe_load_all(text) if document]


def lint(chart: Path, *files: Path) -> str:
    """`helm lint --strict` with the given values files; helm's report, or ChartError with it."""
    done = run_helm("lint", "--strict", str(chart), *[arg for file in files for arg in ("-f", str(file))])
    if done.returncode != 0:
        raise helm_error(f"helm lint --strict {chart.name}", done.stdout + done.stderr)
    return done.stdout


def package(chart: Path, destination: Path) -> Path:
    """`helm package` into destination; the path of the .tgz."""
    destination.mkdir(parents=True, exist_ok=True)
    done = run_helm("package", str(chart), "--destination", str(destination))
    if done.returncode != 0:
        raise helm_error(f"helm package {chart.name}", done.stderr)
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    return destination / f"{meta['name']}-{meta['version']}.tgz"


def _strict(schema: dict) -> dict:
    """An OpenAPI v3 CRD schema that refuses unknown fields, as kubernetes-validate --strict does for core kinds."""
    schema = dict(schema)
    if "properties" in schema:
        schema["properties"] = {name: _strict(sub) for name, sub in schema["properties"].items()}
        if "additionalProperties" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema["additionalProperties"] = False
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            schema[key] = _strict(schema[key])
    return schema


@functools.lru_cache(maxsize=None)
def crd_schema(path: Path, version: str) -> dict:
    """The strict JSON schema of one served version of the CRD in path."""
    crd = yaml.safe_load(path.read_text())
    served = next(v for v in crd["spec"]["versions"] if v["name"] == version)
    return _strict(served["schema"]["openAPIV3Schema"])


def validate_objects(chart: Path, objects: list[dict], kubernetes_version: str) -> None:
    """Every rendered object against its schema (core kinds: kubernetes-validate --strict; custom resources:
    the vendored CRD); ChartError naming the object and the field."""
    import jsonschema
    import kubernetes_validate

    for obj in objects:
        where = f"rendered {obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"
        crd = CRD_SCHEMAS.get((obj.get("apiVersion"), obj.get("kind")))
        if crd:
            error = jsonschema.exceptions.best_match(
                jsonschema.Draft7Validator(crd_schema(chart / crd[0], crd[1])).iter_errors(obj))
            if error is not None:
                field = ".".join(map(str, error.absolute_path)) or "(root)"
                raise ChartError(f"{where} does not match its CRD ({crd[0]}): {field}: {error.message}")
            continue
        try:
            kubernetes_validate.validate(obj, kubernetes_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise ChartError(f"{where} is invalid for Kubernetes {kubernetes_version}: {exc.message}") from None
        except kubernetes_validate.SchemaNotFoundError:
            raise ChartError(f"{where}: no schema for {obj.get('apiVersion')} {obj.get('kind')} in Kubernetes "
                             f"{kubernetes_version} nor a vendored CRD (chart.CRD_SCHEMAS)") from None
