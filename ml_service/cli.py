"""The `mlops` command. Heavy libraries (MLflow, Great Expectations) are imported inside commands."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

EXIT_FAILED = 1
EXIT_USAGE = 2


class CommandError(Exception):
    """A command cannot proceed; the message is for the user."""


def _settings(args):
    from ml_service.config import load_settings, replace

    settings = load_settings()
    changes = {k: v for k, v in (("build_id", getattr(args, "build_id", None)),
                                 ("build_uri", getattr(args, "build_uri", None))) if v}
    return replace(settings, **changes) if changes else settings


# --- pipeline -------------------------------------------------------------------------------

def _step_reporter():
    from ml_service.live import LiveLine

    out = LiveLine()
    symbols = {"done": "ok", "reused": "ok", "skipped": "--", "failed": "!!"}

    def report(record) -> None:
        if record.status == "pending":
            out.start(f"  .. {record.name:<12} running")
            return
        detail = {
            "done": "done",
            "reused": f"reused (from run {record.source_run_id[:8]})",
            "skipped": "skipped (condition not met)",
            "failed": "FAILED",
        }[record.status]
        out.line(f"  {symbols[record.status]} {record.name:<12} {detail:<32} {record.seconds:6.2f}s")
    return report


def _load_pipeline(settings, ref: str, version: int | None):
    from ml_service.pipelines.definition import load_pipeline

    path = Path(ref)
    if path.suffix in (".yml", ".yaml") or path.exists():
        if version is not None:
            raise CommandError("--version applies to published pipelines, not to a file")
        return load_pipeline(path), None
    from ml_service.pipelines.publish import load_published

    pipeline, published = load_published(settings, ref, version)
    return pipeline, (published.name, str(published.version))


def cmd_pipeline_run(args) -> int:
    """Run a pipeline file or a published pipeline."""
    from ml_service.pipelines.definition import parse_param

    settings = _settings(args)
    ref = args.pipeline or str(settings.pipeline_file)
    pipeline, published = _load_pipeline(settings, ref, args.version)
    pipeline = pipeline.with_params(dict(parse_param(p) for p in args.param))
    label = f"{pipeline.name}" + (f" v{published[1]}" if published else "")
    print(f"pipeline {label}: {len(pipeline.steps)} steps" + ("" if not args.no_reuse else " (no reuse)"))
    from ml_service.pipelines.runner import run_pipeline

    started = time.monotonic()
    result = run_pipeline(settings, pipeline, reuse_steps=not args.no_reuse, report=_step_reporter(),
                          published=published)
    took = time.monotonic() - started
    if args.output_json:
        import json

        registered = next((r.values.get("registered_version") for r in result.steps
                           if r.status == "done" and r.values.get("registered_version")), None)
        Path(args.output_json).write_text(json.dumps({
            "run_id": result.run_id, "status": result.status, "outcome": result.outcome, "error": result.error,
            "model_name": settings.model_name, "registered_version": registered}, indent=2))
    if not result.ok:
        print(f"pipeline run {result.run_id} FAILED after {took:.1f}s:\n{result.error}", file=sys.stderr)
        return EXIT_FAILED
    print(f"pipeline run {result.run_id} finished in {took:.1f}s")
    print(f"outcome: {result.outcome}")
    return 0


def cmd_pipeline_publish(args) -> int:
    """Publish a pipeline definition as the next version of its name."""
    from ml_service.pipelines.definition import load_pipeline
    from ml_service.pipelines.publish import publish

    settings = _settings(args)
    pipeline = load_pipeline(Path(args.file) if args.file else settings.pipeline_file)
    published = publish(settings, pipeline, make_default=not args.no_default)
    state = "published" if published.new else "unchanged, already published as"
    print(f"{state} {published.name} version {published.version} (id {published.id})"
          + (", default" if published.default else ""))
    return 0


def cmd_pipeline_list(args) -> int:
    """List published pipelines."""
    from ml_service.pipelines.publish import list_published

    rows = list_published(_settings(args))
    if not rows:
        print("no published pipelines (publish one with `mlops pipeline publish`)")
        return 0
    print(f"{'NAME':<24} {'VERSION':>7}  {'DEFAULT':<7}  {'PUBLISHED':<19}  ID")
    for p in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(p.created / 1000))
        print(f"{p.name:<24} {p.version:>7}  {'yes' if p.default else '':<7}  {when:<19}  {p.id}")
    return 0


# --- model ----------------------------------------------------------------------------------

def cmd_model_list(args) -> int:
    """List the versions of the workspace's model."""
    from ml_service.workspace import registry, tracking

    settings = _settings(args)
    name = args.name or settings.model_name
    versions = registry.list_versions(tracking.connect(settings), name)
    if not versions:
        print(f"no registered versions of {name}")
        return 0
    print(f"{'VERSION':>7}  {'ALIASES':<24} {'METRIC':<18} {'REGISTERED':<19}  RUN")
    for v in versions:
        metric = f"{v.metric} {float(v.tags[v.metric]):.2f}" if v.metric in v.tags else ""
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(v.created / 1000))
        print(f"{v.version:>7}  {','.join(v.aliases):<24} {metric:<18} {when:<19}  {v.run_id}")
    return 0


def cmd_model_show(args) -> int:
    """Show one model version with all its tags."""
    from ml_service.workspace import registry, tracking

    settings = _settings(args)
    ref = args.ref or f"{settings.model_name}@champion"
    version = registry.resolve_version(tracking.connect(settings), ref)
    print(f"name:     {version.name}\nversion:  {version.version}\naliases:  {', '.join(version.aliases)}")
    print(f"source:   {version.source}\nstatus:   {version.status}\ntags:")
    for key in sorted(version.tags):
        print(f"  {key}: {version.tags[key]}")
    return 0


def cmd_model_delete(args) -> int:
    """Delete a model version that nothing uses."""
    from ml_service.deploy import records
    from ml_service.workspace import registry, tracking

    settings = _settings(args)
    if ":" not in args.ref:
        raise CommandError("name the version to delete as NAME:VERSION")
    name, version = args.ref.rsplit(":", 1)
    registry.delete_version(tracking.connect(settings), name, version, records.live_versions(settings, name))
    print(f"deleted {name} version {version}")
    return 0


# --- data -----------------------------------------------------------------------------------

def cmd_data_validate(args) -> int:
    """Validate a data file against the data contract."""
    from ml_service.data.contract import validate_file
    from ml_service.data.report import write_report

    settings = _settings(args)
    suite = Path(args.suite) if args.suite else settings.root / "data" / "contract" / "diabetes_suite.json"
    result = validate_file(Path(args.path), suite)
    report = write_report(result, settings.reports_dir)
    print(result.summary())
    print(f"report: {report}")
    return 0 if result.success else EXIT_FAILED


# --- ui -------------------------------------------------------------------------------------

def cmd_ui(args) -> int:
    """Serve the MLflow UI for the workspace on 127.0.0.1."""
    import subprocess

    settings = _settings(args)
    from ml_service.workspace.tracking import is_local_store

    if not is_local_store(settings):
        print(f"the workspace is an MLflow server: open {settings.tracking_uri}")
        return 0
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", settings.tracking_uri,
            "--default-artifact-root", settings.artifact_root.as_uri(),
            "--host", "127.0.0.1", "--port", str(args.port), "--workers", "1"]
    print(f"MLflow UI on http://127.0.0.1:{args.port} (Ctrl-C to stop)", flush=True)
    try:
        return subprocess.call(argv, env={**__import__("os").environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    except KeyboardInterrupt:
        return 0


# --- serving and deployment -----------------------------------------------------------------

def cmd_serve(args) -> int:
    """Serve a registered model version locally with the scoring service."""
    import os
    import tempfile

    from ml_service.deploy.image import download_model
    from ml_service.serving.__main__ import serve
    from ml_service.workspace import registry, tracking

    settings = _settings(args)
    ref = args.model or f"models:/{settings.model_name}@champion"
    ref = ref[len("models:/"):] if ref.startswith("models:/") else ref
    if "/" in ref:
        ref = ref.replace("/", ":", 1)
    version = registry.resolve_version(tracking.connect(settings), ref)
    with tempfile.TemporaryDirectory(prefix="mlops-serve-") as tmp:
        model_dir = download_model(version, Path(tmp))
        os.environ.update({"MODEL_DIR": str(model_dir), "MLOPS_MODEL_NAME": version.name,
                           "MLOPS_MODEL_VERSION": str(version.version)})
        print(f"serving {version.name} version {version.version} on http://127.0.0.1:{args.port} "
              f"(docs: /docs, metrics: /metrics; Ctrl-C to stop)", flush=True)
        serve("127.0.0.1", args.port, args.workers)
    return 0


def cmd_smoke_test(args) -> int:
    """Smoke-test an environment's live deployment or a URL."""
    import os

    from ml_service.deploy.smoke import SmokeTestError, smoke_test

    url = args.target
    if not url.startswith(("http://", "https://")):
        from ml_service.deploy import records

        deployment = records.current(_settings(args), url)
        if deployment is None or not deployment.url:
            raise CommandError(f"no live deployment with a URL in environment '{url}' (see `mlops deploy list`)")
        url = deployment.url
    try:
        result = smoke_test(url, key=os.environ.get(args.key_env) or None, timeout_s=args.timeout)
    except SmokeTestError as exc:
        print(f"smoke test FAILED for {url}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"smoke test passed for {url}: {', '.join(result.checks)}; result {result.result}")
    return 0


def cmd_image_build(args) -> int:
    """Build the scoring image of a registered model version."""
    from ml_service.deploy.image import build_for_version

    built = build_for_version(_settings(args), args.model)
    print(f"built {built.tag} ({built.size_bytes / 1e6:.0f} MB) in {built.seconds:.1f}s"
          + (f"; pushed {built.pushed}" if built.pushed else ""))
    return 0


def cmd_deploy_qa(args) -> int:
    """Deploy a registered model version to QA (one Docker container)."""
    from ml_service.deploy.qa import deploy_qa

    deployment = deploy_qa(_settings(args), args.model, timeout_s=args.timeout)
    print(f"QA now serves {deployment.model_name} version {deployment.version} at {deployment.url} "
          f"(container {deployment.target}); alias 'qa' moved")
    return 0


def cmd_deploy_prod(args) -> int:
    """Deploy a registered model version to production (GitOps desired state on these machines)."""
    from ml_service.ci.service import identity
    from ml_service.deploy.production import deploy_prod

    settings = _settings(args)
    print(deploy_prod(settings, args.model, identity(settings), smoke_timeout=args.smoke_timeout).message)
    return 0


def cmd_deploy_list(args) -> int:
    """Show what runs where."""
    from ml_service.deploy import records

    rows = records.list_deployments(_settings(args))
    if not args.all:
        rows = [d for d in rows if d.status in (records.LIVE, records.DESIRED)]
        seen, latest = set(), []
        for d in rows:
            if (d.environment, d.status) not in seen:
                seen.add((d.environment, d.status))
                latest.append(d)
        rows = latest
    if not rows:
        print("nothing deployed yet")
        return 0
    print(f"{'ENVIRONMENT':<12} {'VERSION':>7}  {'STATUS':<9} {'MODE':<8} {'SINCE':<19}  {'URL / TARGET':<30} IMAGE")
    for d in rows:
        where = d.url or d.target
        print(f"{d.environment:<12} {d.version:>7}  {d.status:<9} {d.mode:<8} {records.format_time(d.time):<19}  "
              f"{where:<30} {d.image}")
    return 0


# --- parser ---------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every command."""
    parser = argparse.ArgumentParser(prog="mlops", description="GitOps MLOps template: pipelines, "
                                     "models, data contracts and the workspace UI.")
    groups = parser.add_subparsers(dest="group", metavar="COMMAND", required=True)

    pipeline = groups.add_parser("pipeline", help="run, publish and list ML pipelines")
    p_sub = pipeline.add_subparsers(dest="action", metavar="ACTION", required=True)
    run = p_sub.add_parser("run", help="run a pipeline file or a published pipeline")
    run.add_argument("pipeline", nargs="?", help="published name or YAML file (default: mlops.yml model.pipeline)")
    run.add_argument("--version", type=int, help="published version (default: the default version)")
    run.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="override a parameter")
    run.add_argument("--no-reuse", action="store_true", help="run every step even if its inputs are unchanged")
    run.add_argument("--build-id", help="CI build id recorded on the runs and the registered version")
    run.add_argument("--build-uri", help="CI build URI recorded on the runs and the registered version")
    run.add_argument("--output-json", metavar="FILE", help="write run id, outcome and registered version as JSON")
    run.set_defaults(func=cmd_pipeline_run)
    pub = p_sub.add_parser("publish", help="record a pipeline definition as a new published version")
    pub.add_argument("file", nargs="?", help="pipeline YAML (default: mlops.yml model.pipeline)")
    pub.add_argument("--no-default", action="store_true", help="do not make this version the default")
    pub.set_defaults(func=cmd_pipeline_publish)
    lst = p_sub.add_parser("list", help="list published pipelines")
    lst.set_defaults(func=cmd_pipeline_list)

    model = groups.add_parser("model", help="inspect registered models")
    m_sub = model.add_subparsers(dest="action", metavar="ACTION", required=True)
    m_list = m_sub.add_parser("list", help="list versions with aliases and metric")
    m_list.add_argument("name", nargs="?", help="model name (default: mlops.yml model.name)")
    m_list.set_defaults(func=cmd_model_list)
    m_show = m_sub.add_parser("show", help="show one version: NAME:VERSION, NAME@ALIAS or NAME")
    m_show.add_argument("ref", nargs="?", help="default: <model>@champion")
    m_show.set_defaults(func=cmd_model_show)
    m_delete = m_sub.add_parser("delete", help="delete a version nothing serves (refused for live or desired ones)")
    m_delete.add_argument("ref", help="NAME:VERSION")
    m_delete.set_defaults(func=cmd_model_delete)

    data = groups.add_parser("data", help="data contracts")
    d_sub = data.add_subparsers(dest="action", metavar="ACTION", required=True)
    validate = d_sub.add_parser("validate", help="validate a CSV file against the data contract")
    validate.add_argument("path", help="CSV file")
    validate.add_argument("--suite", help="expectation suite JSON (default: data/contract/diabetes_suite.json)")
    validate.set_defaults(func=cmd_data_validate)

    serve = groups.add_parser("serve", help="serve a registered model locally (the scoring service)")
    serve.add_argument("--model", help="models:/NAME@ALIAS, NAME:VERSION ... (default: models:/<model>@champion)")
    serve.add_argument("--port", type=int, default=5001, help="port on 127.0.0.1 (default: %(default)s)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default: %(default)s)")
    serve.set_defaults(func=cmd_serve)

    smoke = groups.add_parser("smoke-test", help="smoke-test an environment (qa, production) or a URL")
    smoke.add_argument("target", help="environment name or http://127.0.0.1:PORT")
    smoke.add_argument("--timeout", type=float, default=60, help="seconds to wait for readiness (default: 60)")
    smoke.add_argument("--key-env", default="MLOPS_SCORING_KEY",
                       help="environment variable holding the scoring key, if auth is on (default: %(default)s)")
    smoke.set_defaults(func=cmd_smoke_test)

    image = groups.add_parser("image", help="scoring images")
    i_sub = image.add_subparsers(dest="action", metavar="ACTION", required=True)
    build = i_sub.add_parser("build", help="build the scoring image of a model version")
    build.add_argument("--model", required=True, help="NAME:VERSION or NAME@ALIAS")
    build.set_defaults(func=cmd_image_build)

    deploy = groups.add_parser("deploy", help="deploy model versions and list deployments")
    dep_sub = deploy.add_subparsers(dest="action", metavar="ACTION", required=True)
    qa = dep_sub.add_parser("qa", help="deploy to QA: one Docker container on 127.0.0.1")
    qa.add_argument("--model", required=True, help="NAME:VERSION or NAME@ALIAS")
    qa.add_argument("--timeout", type=float, default=120, help="seconds to wait for readiness (default: 120)")
    qa.set_defaults(func=cmd_deploy_qa)
    prod = dep_sub.add_parser("prod", help="deploy to production (on a machine without a cluster: commit the "
                                           "desired state to the GitOps target, apply nothing)")
    prod.add_argument("--model", required=True, help="NAME:VERSION or NAME@ALIAS")
    prod.add_argument("--smoke-timeout", type=float, default=120, help="seconds for the smoke test (default: 120)")
    prod.set_defaults(func=cmd_deploy_prod)
    dlist = dep_sub.add_parser("list", help="what runs where")
    dlist.add_argument("--all", action="store_true", help="every deployment, not just the current ones")
    dlist.set_defaults(func=cmd_deploy_list)

    from ml_service.ci.commands import add_commands

    add_commands(groups)

    ui = groups.add_parser("ui", help="serve the MLflow UI for the workspace on 127.0.0.1")
    ui.add_argument("--port", type=int, default=5000, help="port (default: %(default)s)")
    ui.set_defaults(func=cmd_ui)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `mlops` command."""
    import os

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    args = build_parser().parse_args(argv)
    from ml_service.config import ConfigError
    from ml_service.data.contract import DataContractError
    from ml_service.pipelines.definition import PipelineError

    usage_errors = (CommandError, ConfigError, DataContractError, PipelineError)
    try:
        return args.func(args)
    except usage_errors as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        if type(exc).__name__ in ("RegistryError", "ImageError", "DeployError", "ServingConfigError", "CIError",
                                  "TemplateError", "EngineError", "VariableError", "KeyError"):
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAILED
        raise


if __name__ == "__main__":
    sys.exit(main())
