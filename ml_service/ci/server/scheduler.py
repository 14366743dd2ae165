"""The local scheduler: runs pipelines when their `schedules:` fire (ml_service/ci/model/schedules.py).

A tick looks at one UTC minute: every schedule whose cron matches that minute, on every local branch
its filters include (read from the pipeline file in that branch, as Azure does), fires once. Runs are
queued with Build.Reason `Schedule`. With `always: false` a branch whose commit is the one of the last
successful scheduled run of the pipeline is not run: the skip is recorded. With `batch: true` a fire
is skipped while a scheduled run of the pipeline is still in progress.

Fires missed while the scheduler was down (minutes between the last tick and this one) are not run
later: Azure Pipelines queues scheduled runs at their fire times and never replays them. They are
recorded as `missed` so `mlops ci schedules` shows them; and because `always: false` compares with the
last successful scheduled run, changes pushed while the scheduler was down are built at the next fire.

State (the last tick, each schedule's last fire) is kept in .mlops/ci/schedules.json under a file lock,
and every fire, skip and miss is appended to .mlops/ci/schedules.jsonl.
"""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from ml_service.ci.model import schedules as sched
from ml_service.ci.server import service
from ml_service.config import Settings
from ml_service.workspace.gitinfo import git_output

REASON = "Schedule"
IN_PROGRESS = ("queued", "running", "waiting")
DEFAULT_BRANCH = "main"


@dataclass
class Event:
    """What a tick did with one schedule on one branch."""

    time: str
    action: str  # fired | skipped | missed
    pipeline: str
    schedule: str
    branch: str
    detail: str = ""
    run_id: int = 0


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _minute(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(second=0, microsecond=0)


def _dir(settings: Settings) -> Path:
    path = settings.state_dir / "ci"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def _locked_state(settings: Settings):
    """The scheduler's state, read and written back under an exclusive lock (two ticks never overlap)."""
    folder = _dir(settings)
    with open(folder / "schedules.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = folder / "schedules.json"
        state = json.loads(path.read_text()) if path.exists() else {}
        state.setdefault("schedules", {})
        yield state
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
        tmp.replace(path)


def read_state(settings: Settings) -> dict:
    """The scheduler's state (last tick, last fire per schedule and branch); empty before the first tick."""
    path = settings.state_dir / "ci" / "schedules.json"
    return json.loads(path.read_text()) if path.exists() else {"schedules": {}}


def events(settings: Settings) -> list[dict]:
    """Every recorded fire, skip and miss, oldest first."""
    path = settings.state_dir / "ci" / "schedules.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _record(settings: Settings, found: list[Event]) -> None:
    if found:
        with open(_dir(settings) / "schedules.jsonl", "a") as out:
            for event in found:
                out.write(json.dumps(asdict(event)) + "\n")


def branches(root: Path) -> dict[str, str]:
    """Local branch -> commit; without git, the work tree as `main` with no commit."""
    listing = git_output(root, "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads")
    found = dict(line.split(" ", 1) for line in listing.splitlines() if " " in line)
    return found or {DEFAULT_BRANCH: ""}


def branch_schedules(root: Path, branch: str, commit: str) -> list[sched.Schedule]:
    """The schedules in the pipeline files of a branch (the work tree when that branch is checked out)."""
    current = git_output(root, "rev-parse", "--abbrev-ref", "HEAD")
    if not commit or current == branch:
        return sched.read_all(root)
    from ml_service.ci.scaffold import PIPELINES_DIR

    found = []
    listing = git_output(root, "ls-tree", "--name-only", f"{commit}:{PIPELINES_DIR}")
    for name in sorted(n for n in listing.splitlines() if n.endswith(".yml")):
        text = git_output(root, "show", f"{commit}:{PIPELINES_DIR}/{name}")
        found += sched.read_file(Path(root) / PIPELINES_DIR / name, text)
    return found


def source_for(settings: Settings, branch: str, commit: str) -> Path:
    """Where a scheduled run of branch@commit runs: the project when it has that commit checked out,
    else a checkout under .mlops/ci/checkouts."""
    root = settings.root
    if not commit or (git_output(root, "rev-parse", "--abbrev-ref", "HEAD") == branch
                      and git_output(root, "rev-parse", "HEAD") == commit):
        return root
    from ml_service.ci.server import hooks

    dest = settings.state_dir / "ci" / "checkouts" / f"{branch.replace('/', '_')}-{commit[:12]}"
    return hooks.checkout(root, commit, dest)


def _last_success(runs, pipeline: str, branch: str):
    """The last completely successful scheduled run (succeeded with issues does not count, as on Azure)."""
    done = [r for r in runs if r.pipeline == pipeline and r.reason == REASON and r.branch == branch
            and r.status == "completed" and r.result == "succeeded"]
    return max(done, key=lambda r: r.id) if done else None


def ml_pipeline_published(settings: Settings, project: str) -> bool:
    """Whether the model project's ML pipeline has a published version (its build publishes it); True when
    the workspace cannot tell (the retrain then says what it found)."""
    from ml_service.errors import MLOpsError

    try:
        from ml_service.pipelines.definition import load_pipeline
        from ml_service.pipelines.publish import list_published

        chosen = settings.select(project)
        name = load_pipeline(chosen.pipeline_file).name
        return any(p.name == name for p in list_published(chosen))
    except (MLOpsError, OSError):
        return True


def ready_file(settings: Settings, file: Path) -> tuple[Path | None, str]:
    """What a fire of file runs: file itself; a model project's build first when its retrain fires before the
    ML pipeline was ever published (the build's completion runs the retrain); None when neither can run.
    Returns (file or None, what to add to the event's detail, or why it was skipped)."""
    from ml_service.ci.scaffold import pipeline_name

    project = next((m.project for m in settings.models if pipeline_name(m.project, "retrain") == file.stem), None)
    if project is None or ml_pipeline_published(settings, project):
        return file, ""
    build = file.with_name(f"{pipeline_name(project, 'build')}{file.suffix}")
    if build.is_file():
        return build, f"; {project}'s ML pipeline was never published: {build.stem} runs first, its completion " \
                      "runs the retrain"
    return None, f"{project}'s ML pipeline was never published and there is no {build.stem} pipeline to publish " \
                 f"it: run `mlops --project {project} pipeline publish`"


def tick(settings: Settings, at: datetime | None = None) -> tuple[list[Event], list[int]]:
    """Evaluate the schedules for the minute of `at` (default: now, UTC): queue the runs due then and
    record fires, skips and misses. Returns (events, queued run ids); the caller runs them."""
    minute = _minute(at or datetime.now(timezone.utc))
    stamp = _iso(minute)
    store = service.open_store(settings)
    found: list[Event] = []
    queued: list[int] = []
    with _locked_state(settings) as state:
        last = sched.parse_time(state["last_tick"]) if state.get("last_tick") else None
        due: dict[tuple[str, str], list[sched.Schedule]] = {}
        commits = branches(settings.root)
        for branch, commit in commits.items():
            for schedule in branch_schedules(settings.root, branch, commit):
                if not schedule.applies_to(branch):
                    continue
                key = f"{schedule.key}|{branch}"
                entry = state["schedules"].setdefault(key, {})
                if last is not None and last < minute:
                    missed = [t for t in schedule.fires(last, minute - sched.MINUTE)
                              if _iso(t) != entry.get("last_fire")]
                    if missed:
                        entry["missed"] = entry.get("missed", 0) + len(missed)
                        entry["last_missed"] = _iso(missed[-1])
                        found.append(Event(stamp, "missed", schedule.pipeline, schedule.display_name, branch,
                                           f"{len(missed)} fire(s) while the scheduler was not running, "
                                           f"last {_iso(missed[-1])}: not replayed"))
                if schedule.is_due(minute) and entry.get("last_fire") != stamp:
                    entry["last_fire"] = stamp
                    due.setdefault((schedule.pipeline, branch), []).append(schedule)
        runs = store.list_runs(100000) if due else []
        for (pipeline, branch), fired in due.items():
            names = ", ".join(s.display_name for s in fired)
            commit = commits[branch]
            always = any(s.always for s in fired)
            previous = _last_success(runs, pipeline, branch)
            busy = [r for r in runs if r.pipeline == pipeline and r.reason == REASON and r.status in IN_PROGRESS]
            skip = ""
            if not always and previous is not None and previous.commit_sha == commit:
                skip = f"no changes on {branch} since the last successful scheduled run {previous.id} " \
                       f"({commit[:8] or 'no commit'}); always is false"
            elif not always and busy and any(s.batch for s in fired):
                skip = f"scheduled run {busy[0].id} is still in progress; batch is true"
            if skip:
                found += [Event(stamp, "skipped", pipeline, s.display_name, branch, skip) for s in fired]
                for s in fired:
                    state["schedules"][f"{s.key}|{branch}"]["last_skip"] = stamp
                continue
            source = source_for(settings, branch, commit)
            file, why = ready_file(settings, Path(source) / fired[0].file.relative_to(settings.root))
            if file is None:
                found += [Event(stamp, "skipped", pipeline, s.display_name, branch, why) for s in fired]
                for s in fired:
                    state["schedules"][f"{s.key}|{branch}"]["last_skip"] = stamp
                continue
            run_id = service.queue(settings, store, file, REASON, {}, source, branch, commit)
            queued.append(run_id)
            for s in fired:
                state["schedules"][f"{s.key}|{branch}"]["last_run"] = run_id
            found += [Event(stamp, "fired", pipeline, s.display_name, branch, f"run {run_id} ({names}){why}", run_id)
                      for s in fired]
        if last is None or last < minute:
            state["last_tick"] = stamp
    _record(settings, found)
    return found, queued


def overview(settings: Settings, now: datetime | None = None) -> list[dict]:
    """Every schedule on every branch it applies to: next fire, last fire/skip/miss, last run."""
    now = now or datetime.now(timezone.utc)
    state = read_state(settings)["schedules"]
    rows = []
    for branch, commit in branches(settings.root).items():
        for schedule in branch_schedules(settings.root, branch, commit):
            if not schedule.applies_to(branch):
                continue
            entry = state.get(f"{schedule.key}|{branch}", {})
            rows.append({"pipeline": schedule.pipeline, "schedule": schedule.display_name, "cron": schedule.cron,
                         "branch": branch, "always": schedule.always, "next": _iso(schedule.next_fire(now)),
                         "last_fire": entry.get("last_fire", ""), "last_run": entry.get("last_run", 0),
                         "last_skip": entry.get("last_skip", ""), "missed": entry.get("missed", 0)})
    return sorted(rows, key=lambda r: (r["next"], r["pipeline"], r["branch"]))


def _spawn(run_id: int, project: str = ""):
    env = {**os.environ, "MLOPS_MODEL": project} if project else None  # --project, passed on explicitly
    return subprocess.Popen([sys.executable, "-m", "ml_service.cli", "ci", "scheduler", "--execute", str(run_id)],
                            env=env)


def run_forever(settings: Settings, say=print, sleep=time.sleep, now=lambda: datetime.now(timezone.utc),
                spawn=_spawn) -> None:
    """Tick at the start of every minute until interrupted; each fired run runs in its own process
    (spawn(run_id)), so a long run never delays the next tick."""
    children: list = []
    say(f"scheduler: {len(overview(settings))} schedule(s); ticking every minute (UTC). Ctrl-C stops it.")
    try:
        while True:
            moment = now()
            found, queued = tick(settings, moment)
            for event in found:
                say(f"{event.time} {event.action:<7} {event.pipeline} [{event.schedule}] on {event.branch}: "
                    f"{event.detail}")
            children += [spawn(run_id, settings.selected) if settings.selected else spawn(run_id) for run_id in queued]
            children = [c for c in children if c.poll() is None]
            sleep(60.5 - moment.second - moment.microsecond / 1e6)
    except KeyboardInterrupt:
        say(f"scheduler stopped; {len(children)} run(s) still running in their own processes")
