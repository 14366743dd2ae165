"""`mlops pipeline ...`: run, publish and list ML pipelines."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from ml_service.cli.options import BUILD_ID, BUILD_URI
from ml_service.cli.support import EXIT_FAILED, CommandError, command_settings


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


def _load_pipeline(settings, ref: str | None, version: int | None, published: bool):
    """(settings for the pipeline's project, pipeline, (published name, version) or None)."""
    from ml_service.pipelines.definition import load_pipeline

    if ref is None and not published:
        if version is not None:
            raise CommandError("--version applies to published pipelines: add --published or name one")
        return settings, load_pipeline(settings.pipeline_file), None
    if ref is not None and (Path(ref).suffix in (".yml", ".yaml") or Path(ref).exists()):
        if version is not None:
            raise CommandError("--version applies to published pipelines, not to a file")
        return settings, load_pipeline(Path(ref)), None
    from ml_service.pipelines.publish import load_published

    name = ref or load_pipeline(settings.pipeline_file).name
    pipeline, chosen = load_published(settings, name, version)
    if chosen.project and chosen.project != settings.project:
        settings = settings.select(chosen.project)
    return settings, pipeline, (chosen.name, str(chosen.version))


def cmd_pipeline_run(args) -> int:
    """Run a pipeline file or a published pipeline."""
    from ml_service.pipelines.definition import parse_param

    settings, pipeline, published = _load_pipeline(command_settings(args), args.pipeline, args.version,
                                                   args.published)
    pipeline = pipeline.with_builtins(settings.model.builtin_params(settings.root))
    pipeline = pipeline.with_params(dict(parse_param(p) for p in args.param))
    label = f"{pipeline.name}" + (f" v{published[1]}" if published else "")
    print(f"pipeline {label} ({settings.project}): {len(pipeline.steps)} steps"
          + ("" if not args.no_reuse else " (no reuse)"))
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
            "model_name": settings.model_name, "project": settings.project,
            "registered_version": registered}, indent=2))
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

    settings = command_settings(args)
    pipeline = load_pipeline(Path(args.file) if args.file else settings.pipeline_file)
    published = publish(settings, pipeline, make_default=not args.no_default)
    state = "published" if published.new else "unchanged, already published as"
    print(f"{state} {published.name} version {published.version} (id {published.id})"
          + (", default" if published.default else ""))
    return 0


def cmd_pipeline_list(args) -> int:
    """List published pipelines."""
    from ml_service.pipelines.publish import list_published

    rows = list_published(command_settings(args))
    if not rows:
        print("no published pipelines (publish one with `mlops pipeline publish`)")
        return 0
    print(f"{'NAME':<28} {'VERSION':>7}  {'DEFAULT':<7}  {'PUBLISHED':<19}  {'PROJECT':<28} ID")
    for p in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(p.created / 1000))
        print(f"{p.name:<28} {p.version:>7}  {'yes' if p.default else '':<7}  {when:<19}  {p.project:<28} {p.id}")
    return 0


def add_commands(groups) -> None:
    """Register `mlops pipeline` and its actions."""
    pipeline = groups.add_parser("pipeline", help="run, publish and list ML pipelines")
    p_sub = pipeline.add_subparsers(dest="action", metavar="ACTION", required=True)
    run = p_sub.add_parser("run", help="run a pipeline file or a published pipeline")
    run.add_argument("pipeline", nargs="?", help="published name or YAML file (default: the model project's "
                                                 "pipeline.yml)")
    run.add_argument("--published", action="store_true",
                     help="run the published default version of the model project's pipeline")
    run.add_argument("--version", type=int, help="published version (default: the default version)")
    run.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="override a parameter")
    run.add_argument("--no-reuse", action="store_true", help="run every step even if its inputs are unchanged")
    BUILD_ID.add(run)
    BUILD_URI.add(run)
    run.add_argument("--output-json", metavar="FILE", help="write run id, outcome and registered version as JSON")
    run.set_defaults(func=cmd_pipeline_run)
    pub = p_sub.add_parser("publish", help="record a pipeline definition as a new published version")
    pub.add_argument("file", nargs="?", help="pipeline YAML (default: the model project's pipeline.yml)")
    pub.add_argument("--no-default", action="store_true", help="do not make this version the default")
    pub.set_defaults(func=cmd_pipeline_publish)
    lst = p_sub.add_parser("list", help="list published pipelines")
    lst.set_defaults(func=cmd_pipeline_list)
