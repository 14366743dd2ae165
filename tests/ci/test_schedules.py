"""Schedules with Azure's meaning: which schedules a tick fires, always: false, missed fires, the CLI."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from ml_service.ci import scheduler, schedules, service
from ml_service.config import load_settings
from tests.conftest import ROOT

STEP = "steps:\n  - script: echo \"ran $(Build.DefinitionName) because $(Build.Reason)\"\n"
PIPELINES = {
    "nightly": """trigger: none
schedules:
  - cron: "0 3 * * *"
    displayName: Nightly
    branches: {include: [main, feature/*], exclude: [feature/old-*]}
    always: 'true'
""",
    "halfpast": """schedules:
  - cron: "30 3 * * *"
    displayName: Half past three
    always: 'true'
""",
    "several": """schedules:
  - cron: "0 3 * * Thursday"
    displayName: Thursday build
    branches: {include: [main]}
    always: 'true'
  - cron: "0 */3 * * *"
    displayName: Every three hours
    branches: {include: [main]}
""",
    "monthly": """schedules:
  - cron: "0 3 26 * Mon"
    displayName: Mondays that are the 26th
    always: 'true'
""",
}
THURSDAY_3AM = datetime(2026, 11, 26, 3, 0, 20, tzinfo=timezone.utc)  # a Thursday, the 26th


def git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A real git repository with four scheduled pipelines on main and two feature branches."""
    work = tmp_path / "work"
    (work / ".pipelines").mkdir(parents=True)
    (work / "mlops.yml").write_text("models:\n  - {project: alpha, name: alpha_model}\n")
    for name, text in PIPELINES.items():
        (work / ".pipelines" / f"{name}.yml").write_text(text + STEP)
    git(work, "init", "--quiet", "--initial-branch", "main")
    git(work, "-c", "user.email=t@example.com", "-c", "user.name=t", "add", ".")
    git(work, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "--quiet", "-m", "pipelines")
    git(work, "branch", "feature/new")
    git(work, "branch", "feature/old-one")
    monkeypatch.setenv("MLOPS_ROOT", str(work))
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MLOPS_USER", "scheduler@example.com")
    monkeypatch.delenv("MLOPS_MODEL", raising=False)
    return load_settings()


def commit(settings, message):
    path = settings.root / "src.txt"
    path.write_text(message)
    git(settings.root, "-c", "user.email=t@example.com", "-c", "user.name=t", "add", ".")
    git(settings.root, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "--quiet", "-m", message)


def fired(events):
    return sorted((e.pipeline, e.schedule, e.branch) for e in events if e.action == "fired")


def run_all(settings, run_ids):
    store = service.open_store(settings)
    for run_id in run_ids:
        service.execute(settings, store, run_id)
    return [store.get_run(run_id) for run_id in run_ids]


def test_a_tick_fires_exactly_the_schedules_due_in_that_minute(repo):
    events, queued = scheduler.tick(repo, THURSDAY_3AM)
    assert fired(events) == [
        ("nightly", "Nightly", "feature/new"),           # include feature/*, not excluded
        ("nightly", "Nightly", "main"),
        ("several", "Every three hours", "main"),          # two schedules of one pipeline due together
        ("several", "Thursday build", "main"),           # a full day name, as NCrontab reads it
    ]                                                    # not: halfpast (03:30), monthly (26th but not Monday),
    store = service.open_store(repo)                     # nightly on feature/old-one (excluded)
    runs = [store.get_run(r) for r in queued]
    assert sorted((r.pipeline, r.branch) for r in runs) == [("nightly", "feature/new"), ("nightly", "main"),
                                                            ("several", "main")]
    assert {r.reason for r in runs} == {"Schedule"}
    again, queued_again = scheduler.tick(repo, THURSDAY_3AM.replace(second=50))
    assert fired(again) == [] and queued_again == []      # the same minute never fires twice


def test_day_of_month_and_day_of_week_must_both_match_as_in_ncrontab():
    monthly = schedules.read_file(ROOT / "x.yml", PIPELINES["monthly"])[0]
    assert not monthly.is_due(datetime(2026, 11, 26, 3, 0))      # the 26th, a Thursday
    assert monthly.next_fire(datetime(2026, 11, 26, 4, 0)) == datetime(2027, 4, 26, 3, 0, tzinfo=timezone.utc)


def test_bad_cron_is_an_error_naming_the_file_and_entry(tmp_path):
    path = tmp_path / "bad.yml"
    path.write_text("schedules:\n  - cron: '0 25 * * *'\nsteps: []\n")
    with pytest.raises(schedules.ScheduleError, match=r"bad.yml: schedules\[0\].cron: '0 25 \* \* \*'"):
        schedules.read_file(path)


@pytest.mark.integration
def test_always_false_skips_an_unchanged_branch_and_records_the_skip(repo):
    three_hourly = lambda hour: datetime(2026, 11, 26, hour, 0, tzinfo=timezone.utc)  # noqa: E731
    events, queued = scheduler.tick(repo, three_hourly(6))
    assert fired(events) == [("several", "Every three hours", "main")]
    assert [r.result for r in run_all(repo, queued)] == ["succeeded"]

    events, queued = scheduler.tick(repo, three_hourly(9))  # nothing changed since that successful run
    assert queued == [] and fired(events) == []
    skipped = [e for e in events if e.action == "skipped"]
    assert [(e.pipeline, e.schedule) for e in skipped] == [("several", "Every three hours")]
    assert "no changes on main since the last successful scheduled run" in skipped[0].detail
    assert any(e["action"] == "skipped" for e in scheduler.events(repo))  # recorded

    commit(repo, "a change")
    events, queued = scheduler.tick(repo, three_hourly(12))
    assert fired(events) == [("several", "Every three hours", "main")] and len(queued) == 1


@pytest.mark.integration
def test_fires_missed_while_down_are_recorded_not_replayed(repo):
    scheduler.tick(repo, datetime(2026, 11, 26, 0, 1, tzinfo=timezone.utc))
    events, queued = scheduler.tick(repo, datetime(2026, 11, 26, 7, 0, tzinfo=timezone.utc))  # down 00:02-06:59
    assert queued == [] and fired(events) == []
    missed = {(e.pipeline, e.schedule, e.branch): e.detail for e in events if e.action == "missed"}
    assert set(missed) == {("several", "Every three hours", "main"), ("several", "Thursday build", "main"),
                           ("nightly", "Nightly", "main"), ("nightly", "Nightly", "feature/new"),
                           *(("halfpast", "Half past three", b) for b in ("main", "feature/new", "feature/old-one"))}
    assert missed[("several", "Every three hours", "main")].startswith("2 fire(s)")  # 03:00, 06:00
    assert service.open_store(repo).list_runs() == []
    rows = {(r["pipeline"], r["schedule"], r["branch"]): r for r in scheduler.overview(repo)}
    assert rows[("several", "Every three hours", "main")]["missed"] == 2


@pytest.mark.integration
def test_cli_tick_at_a_chosen_time_runs_what_is_due_and_schedules_lists_next_fires(repo):
    env = {**os.environ, "MLOPS_ROOT": str(repo.root), "MLOPS_STATE_DIR": str(repo.state_dir)}
    out = subprocess.run([sys.executable, "-m", "ml_service.cli", "ci", "scheduler", "--tick",
                          "--at", "2026-11-26T03:30:00Z"], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "fired   halfpast [Half past three] on main" in out.stdout
    runs = {r.branch: r for r in service.open_store(repo).list_runs()}
    assert sorted(runs) == ["feature/new", "feature/old-one", "main"]  # halfpast has no branch filter
    assert {r.result for r in runs.values()} == {"succeeded"}
    assert f"run {runs['main'].id} (halfpast): succeeded" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "ml_service.cli", "ci", "scheduler", "--tick", "--at", "tomorrow"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode != 0 and "not an ISO time" in bad.stderr and "Traceback" not in bad.stderr
    listing = subprocess.run([sys.executable, "-m", "ml_service.cli", "ci", "schedules"], capture_output=True,
                             text=True, env=env, timeout=60)
    assert listing.returncode == 0
    lines = [line for line in listing.stdout.splitlines() if "halfpast" in line]
    main = next(x for x in lines if " main " in x)
    assert len(lines) == 3 and f"fired 2026-11-26T03:30:00Z (run {runs['main'].id})" in main


def test_the_foreground_scheduler_ticks_each_minute_and_starts_runs_in_their_own_processes(repo):
    class Finished:
        def poll(self):
            return 0

    minutes = iter([THURSDAY_3AM, THURSDAY_3AM.replace(minute=1), THURSDAY_3AM.replace(hour=6, minute=0)])
    started, said, naps = [], [], []

    def sleep(seconds):
        naps.append(seconds)
        if len(naps) == 3:
            raise KeyboardInterrupt  # Ctrl-C

    scheduler.run_forever(repo, say=said.append, sleep=sleep, now=lambda: next(minutes),
                          spawn=lambda run_id: started.append(run_id) or Finished())
    store = service.open_store(repo)
    assert [(store.get_run(r).pipeline, store.get_run(r).branch) for r in started] == [
        ("nightly", "feature/new"), ("nightly", "main"), ("several", "main"),   # 03:00
        ("several", "main")]                                                    # 06:00 (every three hours)
    assert naps[0] == pytest.approx(40.5) and said[-1].startswith("scheduler stopped")
    assert not any("fired   halfpast" in line for line in said)
    assert any("missed  halfpast [Half past three] on main: 1 fire(s)" in line for line in said)  # 03:30
