"""`make run`: bring one model project to the desired state, doing only what differs from it.

The desired state of a work tree (its commit plus any uncommitted change) is: the project's chain
(build -> retrain -> release) has run on it, QA serves the champion, and a newer champion waits for
the production approval. A tree that has already been through the chain is not run again: what is
where is said in a few lines, and only what differs is done (QA lost its container: the champion is
released again; APPROVE=1: the waiting approval is given). The chain runs when the project's inputs
changed since its last full chain, judged by its build's own path filter (the change since then is a
tree diff, uncommitted changes included), or when forced. Where the time went is printed at the end.

The last full chain of each project is kept in .mlops/ci/converge.json: the work tree's git tree id
(`git write-tree` over a copy of the index with every file added: sources.work_tree, the tree the chain's
checkout holds) and the chain's run ids.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ml_service.ci.model import triggers
from ml_service.ci.model.yamlload import YamlError, load_file
from ml_service.ci.runner.sources import work_tree
from ml_service.ci.scaffold import pipeline_name
from ml_service.ci.server import approvals, service
from ml_service.config import Settings
from ml_service.workspace.gitinfo import git_output

STATE_FILE = "converge.json"
DONE = ("succeeded", "succeededWithIssues")
IMAGE_STEP = "image"  # the release's step that builds the scoring image (templates/release-stages.yml)


def changed_paths(root: Path, old: str, new: str) -> list[str] | None:
    """Paths that differ between two trees; None when either tree is unknown (then everything counts)."""
    if not old or not new:
        return None
    if old == new:
        return []
    result = subprocess.run(["git", "-C", str(root), "diff-tree", "-r", "--name-only", "--no-renames", old, new],
                            capture_output=True, text=True)
    return result.stdout.split("\n")[:-1] if result.returncode == 0 else None


def watched(build_file: Path, changed: list[str] | None) -> list[str] | None:
    """The changed paths the build's path filter (its trigger) includes; None when the change is unknown."""
    if changed is None:
        return None
    try:
        document = load_file(build_file) or {}
    except (OSError, YamlError):
        return changed
    spec = document.get("trigger") if isinstance(document, dict) else None
    spec = spec if isinstance(spec, dict) else None
    return [path for path in changed if triggers.paths_filter_matches(spec, [path])]


def read_state(settings: Settings) -> dict:
    """Project -> its last full chain: tree, commit, run ids; {} before the first."""
    path = settings.state_dir / "ci" / STATE_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def write_state(settings: Settings, project: str, entry: dict) -> None:
    """Record the last full chain of project (written whole, then renamed into place)."""
    state = read_state(settings)
    state[project] = entry
    path = settings.state_dir / "ci" / STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
    tmp.replace(path)


def chain_of(store, build_id: int) -> list:
    """The build run and the runs its completion triggered, transitively, oldest first."""
    runs = {r.id: r for r in store.list_runs(100000) if r.id >= build_id}
    chain, frontier = [], {build_id}
    for run_id in sorted(runs):
        run = runs[run_id]
        if run_id in frontier or run.triggered_by in frontier:
            frontier.add(run_id)
            chain.append(run)
    return chain


def chain_complete(chain: list, project: str) -> bool:
    """The build and the retrain succeeded: the tree has been through them. A release that failed is not
    run again with them: QA then does not serve the champion, and the next `make run` releases it."""
    results = {r.pipeline: r for r in chain}
    build, retrain = results.get(pipeline_name(project, "build")), results.get(pipeline_name(project, "retrain"))
    return bool(build and build.result in DONE and retrain and retrain.result in DONE)


def unique(runs: list) -> list:
    """Runs without repeats (a resumed run appears once), oldest first."""
    return sorted({r.id: r for r in runs}.values(), key=lambda r: r.id)


def phase_times(store, chain: list) -> dict[str, float]:
    """Seconds spent in build, retrain, image and QA (the release's other stages count as QA)."""
    times = {"build": 0.0, "retrain": 0.0, "image": 0.0, "QA": 0.0}
    for run in unique(chain):
        kind = run.pipeline.rsplit("-", 1)[-1]
        if kind in ("build", "retrain"):
            times[kind] += max(0.0, (run.finished or time.time()) - (run.started or run.created))
        elif kind == "release":
            for record in store.records(run.id):
                took = (record["finished"] or 0) - (record["started"] or 0)
                if record["kind"] == "step" and record["name"] == IMAGE_STEP and took > 0:
                    times["image"] += took
                elif record["kind"] == "stage" and record["name"] != "Production" and took > 0:
                    times["QA"] += took
            times["QA"] = max(0.0, times["QA"] - times["image"])
    return times


def timing_line(setup: float, times: dict[str, float], total: float) -> str:
    """Where the time went, with the load average (a busy machine shows as such)."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    parts = [f"set-up {setup:.1f} s", *(f"{name} {took:.1f} s" for name, took in times.items())]
    return f"time: {', '.join(parts)}; total {total:.1f} s (load average {load:.2f} on {os.cpu_count()} cores)"


def off_branch_triggers(settings: Settings, store, run_id: int) -> list[int]:
    """Queue what the completion of run_id triggers, every branch filter aside: `make run` asks for the whole
    chain of its work tree on whatever branch it is (the pipelines' completion triggers name main only)."""
    run = store.get_run(run_id)
    result = {"succeeded": "Succeeded", "succeededWithIssues": "SucceededWithIssues"}.get(run.result, "")
    stages = {k: v for k, v in (run.state or {}).get("results", {}).items() if "/" not in k}
    queued = []
    for _, path, document in service.pipeline_documents(Path(run.source_dir)):
        section = document.get("resources")
        resources = (section.get("pipelines") or []) if isinstance(section, dict) else []
        for resource in [r for r in resources if isinstance(r, dict) and r.get("source") == run.pipeline]:
            trigger = resource.get("trigger")
            if isinstance(trigger, dict):
                resource = {**resource, "trigger": {k: v for k, v in trigger.items() if k != "branches"}}
            if not triggers.resource_trigger_matches(resource, run.branch, result, stages):
                continue
            info = {str(resource.get("pipeline")): {
                "runID": run.id, "runName": f"{run.pipeline} #{run.id}", "pipelineName": run.pipeline,
                "sourceBranch": f"refs/heads/{run.branch}", "sourceCommit": run.commit_sha}}
            queued.append(service.queue(settings, store, path, "ResourceTrigger", {}, Path(run.source_dir),
                                        run.branch, run.commit_sha, info, triggered_by=run.id))
    return queued


def run_chain(settings: Settings, store, project: str, say) -> list:
    """Queue the project's build and run it here with what its completion triggers; returns the chain."""
    from ml_service.ci.runner.progress import Progress

    file = service.resolve_file(settings, pipeline_name(project, "build"))
    run_id = service.queue(settings, store, file, "Manual")
    run = store.get_run(run_id)
    say(f"run {run_id}: {run.pipeline} on {run.branch or '-'}@{run.commit_sha[:8] or '-'}")
    ran = service.execute(settings, store, run_id, Progress())
    while ran and not [r for r in store.list_runs(100000) if r.triggered_by == ran[-1]]:
        followed = off_branch_triggers(settings, store, ran[-1])  # none on main: the engine's triggers ran them
        if not followed:
            break
        say(f"on branch {run.branch or '-'}: following the chain of run {ran[-1]} (its triggers name other branches)")
        for triggered in followed:
            ran += service.execute(settings, store, triggered, Progress())
    return chain_of(store, run_id)


def release_champion(settings: Settings, store, project: str, ref: str, say) -> list:
    """Run the project's release for ref (the champion) and return its runs."""
    from ml_service.ci.runner.progress import Progress

    file = service.resolve_file(settings, pipeline_name(project, "release"))
    run_id = service.queue(settings, store, file, "Manual", {"model": ref})
    say(f"run {run_id}: {pipeline_name(project, 'release')} of {ref}")
    return [store.get_run(i) for i in service.execute(settings, store, run_id, Progress())]


def describe(settings: Settings, store, chain: list, qa: dict | None, say) -> None:
    """What is where: the chain's runs and their summaries, the champion, QA (qa_state), what waits for
    approval."""
    for run in unique(chain):
        outcome = run.result or run.status
        say(f"  run {run.id} {run.pipeline}: {outcome}")
        for text in (run.state or {}).get("summaries", []):
            for line in text.splitlines():
                say(f"    {line}")
    if qa is not None:
        say(f"champion: {qa['model']}:{qa['champion']}" if qa.get("champion") else f"champion: none yet "
            f"({qa.get('model')})")
        say(f"QA: {qa.get('detail') or qa.get('live') or 'nothing deployed'}" +
            ("" if qa.get("in_sync") or not qa.get("champion") else " (not the champion)"))
    pending = [a for a in store.approvals(status="pending")
               if store.get_run(a["run_id"]).pipeline == pipeline_name(settings.model.project, "release")]
    for approval in pending:
        say(f"waits for approval: run {approval['run_id']} stage {approval['stage']} -> {approval['environment']}"
            f" (mlops ci approve {approval['run_id']}, or make run APPROVE=1)")
    if not pending:
        say("waits for approval: nothing")


def mlops_command(settings: Settings) -> str:
    """The `mlops` the pipelines' steps run: the project's environment first (templates/install.yml)."""
    for folder in (settings.root / ".venv" / "bin", Path(sys.executable).parent):
        if (folder / "mlops").is_file():
            return str(folder / "mlops")
    return shutil.which("mlops") or "mlops"


def qa_state(settings: Settings) -> dict | None:
    """QA against the champion, as `mlops deploy check qa --json` says (model, champion, live, in_sync,
    detail), or None when it cannot tell."""
    done = subprocess.run([mlops_command(settings), "deploy", "check", "qa", "--json"], capture_output=True,
                          text=True, env={**os.environ, "MLOPS_MODEL": settings.model.project})
    try:
        state = json.loads(done.stdout)
    except ValueError:
        return None
    return state if isinstance(state, dict) else None


def approve_pending(settings: Settings, store, project: str, say) -> list:
    """Approve the newest approval that the project's release waits for, and run it on; returns its runs."""
    from ml_service.ci.runner.progress import Progress

    pending = [a for a in store.approvals(status="pending")
               if store.get_run(a["run_id"]).pipeline == pipeline_name(project, "release")]
    if not pending:
        return []
    run_id = pending[-1]["run_id"]
    approval = approvals.decide(settings, store, run_id, True, "make run APPROVE=1")
    say(f"run {run_id}: stage {approval['stage']} approved by {approval['approver']}")
    return [store.get_run(i) for i in service.execute(settings, store, run_id, Progress())]


def converge(settings: Settings, *, force: bool = False, approve: bool = False, setup: float = 0.0,
             say=print) -> int:
    """Bring the selected model project to its desired state; 0 when it is there (or waits for approval)."""
    started = time.monotonic()
    project = settings.model.project
    store = service.open_store(settings)
    tree = work_tree(settings.root, [settings.state_dir])
    entry = read_state(settings).get(project) or {}
    commit = git_output(settings.root, "rev-parse", "HEAD")
    dirty = bool(git_output(settings.root, "status", "--porcelain"))
    source = f"{commit[:8] or 'no commit'}{' + uncommitted changes' if dirty else ''}"
    done = chain_of(store, entry["build"]) if entry.get("build") else []
    if done and not chain_complete(done, project):
        done = []
    changed = changed_paths(settings.root, entry.get("tree", ""), tree)
    build_file = service.resolve_file(settings, pipeline_name(project, "build"))
    chain: list = []
    code = 0
    qa = None
    relevant = watched(build_file, changed)
    if force or not done or not tree or relevant is None or relevant:
        why = "FORCE=1" if force else "first run" if not done else "changed: " + (
            ", ".join(relevant[:3]) + (f" and {len(relevant) - 3} more" if len(relevant) > 3 else "")
            if relevant else "unknown")
        say(f"model project {project} at {source}: running its chain ({why})")
        chain = run_chain(settings, store, project, say)
        if chain_complete(chain, project) and tree:
            write_state(settings, project, {"tree": tree, "commit": commit, "dirty": dirty,
                                            "build": chain[0].id, "time": time.time()})
        done = chain
    else:
        say(f"model project {project} at {source}: already through its chain (FORCE=1 runs it again)")
        qa = qa_state(settings)
        if qa is not None and qa.get("champion") and not qa.get("in_sync"):
            ref = f"{qa['model']}:{qa['champion']}"
            say(f"QA does not serve the champion {ref} ({qa.get('detail', '')}): releasing it")
            chain = release_champion(settings, store, project, ref, say)
            done = [*done, *chain]
    if approve and code == 0:
        approved = approve_pending(settings, store, project, say)
        chain, done = [*chain, *approved], [*done, *approved]
    say("what is where:")
    describe(settings, store, [store.get_run(r.id) for r in done], qa if qa and not chain else qa_state(settings),
             say)
    say(timing_line(setup, phase_times(store, [store.get_run(r.id) for r in chain]),
                    setup + time.monotonic() - started))
    if any(store.get_run(r.id).result not in ("", *DONE) for r in chain):
        code = 1
    return code


def main(argv: list[str] | None = None) -> int:
    """`python -m ml_service.ci.server.converge [--project P] [--force] [--approve] [--since EPOCH]` (make run)."""
    parser = argparse.ArgumentParser(prog="make run", description=__doc__.splitlines()[0])
    parser.add_argument("--project", help="the model project (default: MLOPS_MODEL, else the first in mlops.yml)")
    parser.add_argument("--force", action="store_true", help="run the whole chain even when nothing changed")
    parser.add_argument("--approve", action="store_true", help="approve the production stage as you and run it")
    parser.add_argument("--since", type=float, default=0.0,
                        help="when set-up began (seconds since the epoch): its time is reported as set-up")
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from ml_service.config import load_settings
    from ml_service.errors import MLOpsError

    setup = max(0.0, time.time() - args.since) if args.since else 0.0
    try:
        env = {**os.environ, "MLOPS_MODEL": args.project} if args.project else None  # never written to os.environ
        return converge(load_settings(env), force=args.force, approve=args.approve, setup=setup)
    except MLOpsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
