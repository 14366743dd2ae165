"""Schedules with Azure's meaning: which schedules a tick fires, always: false, missed fires, the CLI."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml_service.ci.model import schedules
from ml_service.ci.server import scheduler, service
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

    minutes = iter([THURSDAY_3AM, THURSDAY_3AM.replace(minute=1, second=59, microsecond=750000),
                    THURSDAY_3AM.replace(hour=6, minute=0)])
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
    assert naps[:2] == [pytest.approx(40.5), pytest.approx(0.75)]  # to half a second into the next minute
    assert said[-1].startswith("scheduler stopped")
    assert not any("fired   halfpast" in line for line in said)
    assert any("missed  halfpast [Half past three] on main: 1 fire(s)" in line for line in said)  # 03:30


# --- fire times, missed fires and the branch of the last successful run (issue 29) ----------------------------------

CRON_FIELDS = (["*", "0", "*/15", "30", "5,35", "59"], ["*", "3", "*/3", "0-5", "23"], ["*", "26", "1"], ["*"],
               ["*", "Mon", "4", "Sunday", "1-5"])
CRONS = st.tuples(*(st.sampled_from(field) for field in CRON_FIELDS)).map(" ".join)
MOMENTS = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31)).map(
    lambda d: d.replace(tzinfo=timezone.utc))
DAY_NAMES = {"sunday": 0, "sun": 0, "mon": 1}


def field_matches(field: str, value: int) -> bool:
    """One cron field (*, n, */n, a-b, a,b, a day name) against a value: the oracle of these tests."""
    for part in field.split(","):
        if part == "*" or (part.startswith("*/") and value % int(part[2:]) == 0):
            return True
        if "-" in part and int(part.split("-")[0]) <= value <= int(part.split("-")[1]):
            return True
        if part.isdigit() and int(part) == value or DAY_NAMES.get(part.lower()) == value:
            return True
    return False


def due(cron: str, moment: datetime) -> bool:
    """NCrontab's reading: every field must match (day of month and day of week both, when both are set)."""
    minute, hour, day, month, weekday = cron.split()
    return (field_matches(minute, moment.minute) and field_matches(hour, moment.hour)
            and field_matches(day, moment.day) and field_matches(month, moment.month)
            and field_matches(weekday, (moment.weekday() + 1) % 7))


def schedule_of(cron: str) -> schedules.Schedule:
    return schedules.Schedule(pipeline="p", file=ROOT / "p.yml", cron=cron, display_name="s")


@settings(max_examples=60, deadline=None)
@given(cron=CRONS, after=MOMENTS, minutes=st.integers(min_value=0, max_value=600))
def test_fire_times_are_exactly_the_due_minutes_after_the_start_up_to_and_including_the_end(cron, after, minutes):
    """fires(after, until) is every minute t with after < t <= until that the cron matches (both edges)."""
    schedule = schedule_of(cron)
    until = after + timedelta(minutes=minutes)
    minute = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    expected = []
    while minute <= until:
        if due(cron, minute):
            expected.append(minute)
        minute += timedelta(minutes=1)
    assert schedule.fires(after, until) == expected
    assert [m for m in expected if not schedule.is_due(m)] == []


@settings(max_examples=30, deadline=None)
@given(cron=CRONS, start=MOMENTS, first=st.integers(0, 300), second=st.integers(0, 300))
def test_consecutive_windows_count_every_fire_once(cron, start, first, second):
    schedule = schedule_of(cron)
    middle, end = start + timedelta(minutes=first), start + timedelta(minutes=first + second)
    assert schedule.fires(start, middle) + schedule.fires(middle, end) == schedule.fires(start, end)


def test_a_due_minute_and_its_neighbours():
    schedule = schedule_of("30 3 * * *")
    at = datetime(2026, 11, 26, 3, 30, tzinfo=timezone.utc)
    assert schedule.is_due(at) and schedule.is_due(at.replace(second=59))
    assert not schedule.is_due(at - timedelta(minutes=1)) and not schedule.is_due(at + timedelta(minutes=1))
    assert schedule.fires(at - timedelta(minutes=1), at) == [at]          # the end of a window is in it
    assert schedule.fires(at, at + timedelta(hours=1)) == []              # its start is not
    assert schedule.is_due(datetime(2026, 11, 26, 4, 30, tzinfo=timezone(timedelta(hours=1))))  # 03:30 UTC


def missed(events) -> dict:
    return {(e.pipeline, e.schedule, e.branch): int(e.detail.split()[0]) for e in events if e.action == "missed"}


@pytest.mark.integration
@pytest.mark.parametrize("now, missed_three_hourly, fires_now", [
    (datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc), 1, True),    # 03:00 missed; 06:00 is now: it fires
    (datetime(2026, 11, 26, 6, 1, tzinfo=timezone.utc), 2, False),   # 03:00 and 06:00 missed
    (datetime(2026, 11, 26, 2, 59, tzinfo=timezone.utc), 0, False),  # nothing due yet
])
def test_missed_fires_end_the_minute_before_the_tick(repo, now, missed_three_hourly, fires_now):
    scheduler.tick(repo, datetime(2026, 11, 26, 0, 1, tzinfo=timezone.utc))
    events, _ = scheduler.tick(repo, now)
    key = ("several", "Every three hours", "main")
    assert missed(events).get(key, 0) == missed_three_hourly
    assert (key in fired(events)) is fires_now
    rows = {(r["pipeline"], r["schedule"], r["branch"]): r for r in scheduler.overview(repo, now)}
    assert rows[key]["missed"] == missed_three_hourly


@pytest.mark.integration
def test_a_fire_that_ran_is_never_counted_missed_and_ticks_each_minute_miss_nothing(repo):
    scheduler.tick(repo, datetime(2026, 11, 26, 2, 59, tzinfo=timezone.utc))
    events, queued = scheduler.tick(repo, datetime(2026, 11, 26, 3, 0, tzinfo=timezone.utc))
    assert ("several", "Every three hours", "main") in fired(events) and queued
    events, _ = scheduler.tick(repo, datetime(2026, 11, 26, 3, 1, tzinfo=timezone.utc))
    assert missed(events) == {}
    events, _ = scheduler.tick(repo, datetime(2026, 11, 26, 5, 0, tzinfo=timezone.utc))  # down 03:02-04:59
    assert ("several", "Every three hours", "main") not in missed(events)  # 03:00 ran
    assert missed(events)[("halfpast", "Half past three", "main")] == 1


@pytest.mark.integration
def test_schedules_are_listed_only_on_the_branches_their_filters_include(repo):
    rows = scheduler.overview(repo, THURSDAY_3AM)
    assert sorted(r["branch"] for r in rows if r["pipeline"] == "nightly") == ["feature/new", "main"]
    assert sorted(r["branch"] for r in rows if r["pipeline"] == "halfpast") == ["feature/new", "feature/old-one",
                                                                                "main"]
    assert {r["branch"] for r in rows if r["pipeline"] == "several"} == {"main"}
    nightly = next(r for r in rows if r["pipeline"] == "nightly" and r["branch"] == "main")
    assert nightly["next"] == "2026-11-27T03:00:00Z" and nightly["cron"] == "0 3 * * *"


UNCHANGED = """schedules:
  - cron: "0 */3 * * *"
    displayName: Unless unchanged
    branches: {include: [main, feature/*]}
steps:
  - script: echo "ran on $(Build.SourceBranchName)"
"""


@pytest.mark.integration
def test_always_false_compares_with_the_last_successful_run_of_the_same_branch(repo):
    """A successful scheduled run of feature/new at the commit main also has does not make main's fire a skip."""
    (repo.root / ".pipelines" / "unchanged.yml").write_text(UNCHANGED)
    commit(repo, "the unchanged pipeline")
    git(repo.root, "branch", "-f", "feature/new", "main")
    events, queued = scheduler.tick(repo, datetime(2026, 11, 26, 3, 0, tzinfo=timezone.utc))
    store = service.open_store(repo)
    runs = {store.get_run(r).branch: r for r in queued if store.get_run(r).pipeline == "unchanged"}
    assert sorted(runs) == ["feature/new", "main"]
    service.cancel(store, runs["main"])
    run_all(repo, [runs["feature/new"]])
    events, queued = scheduler.tick(repo, datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc))
    assert ("unchanged", "Unless unchanged", "main") in fired(events)
    skipped = [(e.pipeline, e.branch) for e in events if e.action == "skipped"]
    assert ("unchanged", "feature/new") in skipped and ("unchanged", "main") not in skipped


ISSUES = """schedules:
  - cron: "0 */3 * * *"
    displayName: With issues
    branches: {include: [main]}
steps:
  - script: exit 1
    continueOnError: true
"""


@pytest.mark.integration
def test_a_run_that_succeeded_with_issues_is_not_a_reason_to_skip(repo):
    (repo.root / ".pipelines" / "issues.yml").write_text(ISSUES)
    commit(repo, "the issues pipeline")
    _, queued = scheduler.tick(repo, datetime(2026, 11, 26, 3, 0, tzinfo=timezone.utc))
    ran = [r for r in run_all(repo, queued) if r.pipeline == "issues"]
    assert [r.result for r in ran] == ["succeededWithIssues"]
    events, _ = scheduler.tick(repo, datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc))
    assert ("issues", "With issues", "main") in fired(events)


BATCHED = """schedules:
  - cron: "0 */3 * * *"
    displayName: Batched
    branches: {include: [main]}
    always: {always}
    batch: {batch}
steps:
  - script: echo batched
"""


@pytest.mark.integration
@pytest.mark.parametrize("always, batch, fires_again", [("false", "true", False), ("false", "false", True),
                                                        ("true", "true", True)])
def test_batch_skips_a_fire_while_a_scheduled_run_of_the_pipeline_is_in_progress(repo, always, batch, fires_again):
    """Azure's table: with always false, batch true skips a fire while a scheduled run of the pipeline is in
    progress; batch false runs it; always true runs on the cron whatever batch says."""
    (repo.root / ".pipelines" / "batched.yml").write_text(BATCHED.replace("{always}", always).replace("{batch}", batch))
    commit(repo, "the batched pipeline")
    _, queued = scheduler.tick(repo, datetime(2026, 11, 26, 3, 0, tzinfo=timezone.utc))  # queued, never run
    store = service.open_store(repo)
    assert any(store.get_run(r).pipeline == "batched" for r in queued)
    events, _ = scheduler.tick(repo, datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc))
    assert (("batched", "Batched", "main") in fired(events)) is fires_again
    assert fires_again or any(e.action == "skipped" and e.pipeline == "batched" and "in progress" in e.detail
                              for e in events)


@pytest.mark.integration
def test_each_branch_is_scheduled_by_its_own_pipeline_file_and_runs_its_own_commit(repo):
    """Azure reads `schedules:` from the pipeline file in each branch: a cron changed on feature/new only moves
    that branch's fire, and its run builds feature/new's commit."""
    git(repo.root, "checkout", "--quiet", "feature/new")
    nightly = repo.root / ".pipelines" / "nightly.yml"
    nightly.write_text(nightly.read_text().replace('cron: "0 3 * * *"', 'cron: "0 4 * * *"') +
                       "  - script: echo \"feature file\"\n")
    commit(repo, "nightly at four on this branch")
    feature = git(repo.root, "rev-parse", "HEAD")
    git(repo.root, "checkout", "--quiet", "main")
    events, _ = scheduler.tick(repo, THURSDAY_3AM)
    assert [e.branch for e in events if e.action == "fired" and e.pipeline == "nightly"] == ["main"]
    events, queued = scheduler.tick(repo, THURSDAY_3AM.replace(hour=4))
    assert [e.branch for e in events if e.action == "fired" and e.pipeline == "nightly"] == ["feature/new"]
    run = next(r for r in run_all(repo, queued) if r.pipeline == "nightly")
    assert (run.branch, run.commit_sha, run.result) == ("feature/new", feature, "succeeded")
    assert run.source_dir != str(repo.root)  # a checkout of that commit, not the work tree on main
    store = service.open_store(repo)
    logs = "".join(Path(r["log"]).read_text() for r in store.records(run.id) if r["log"])
    assert "feature file" in logs


@pytest.mark.integration
def test_two_ticks_of_the_same_minute_at_once_fire_once(repo, monkeypatch):
    """The state lock: while one tick holds it, another waits, then sees the fire recorded. Both ticks wait on a
    barrier inside the locked part; with the lock only one reaches it (the other waits for the lock), so the
    barrier gives up and the ticks run one after the other."""
    barrier = threading.Barrier(2)
    read = scheduler.branch_schedules

    def meeting(*args):
        try:
            barrier.wait(timeout=2)
        except threading.BrokenBarrierError:
            pass
        return read(*args)

    monkeypatch.setattr(scheduler, "branch_schedules", meeting)
    results = []
    threads = [threading.Thread(target=lambda: results.append(scheduler.tick(repo, THURSDAY_3AM)))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(len(queued) for _, queued in results) == [0, 3]
    assert len(service.open_store(repo).list_runs()) == 3


def test_a_schedule_entry_and_its_defaults(tmp_path):
    path = tmp_path / "p.yml"
    path.write_text("schedules:\n  - cron: '0 3 * * *'\n    branches: [main, 'release/*']\n"
                    "  - cron: '5 4 * * Mon'\n    displayName: Weekly\n    always: 'true'\n    batch: yes\n"
                    "    branches: {exclude: [old]}\nsteps: []\n")
    first, second = schedules.read_file(path)
    assert (first.pipeline, first.display_name, first.include, first.exclude, first.always, first.batch) == \
        ("p", "0 3 * * *", ("main", "release/*"), (), False, False)
    assert (second.display_name, second.include, second.exclude, second.always, second.batch) == \
        ("Weekly", (), ("old",), True, True)
    assert first.applies_to("release/2") and not first.applies_to("dev")
    assert second.applies_to("dev") and not second.applies_to("old")
    assert schedules.read_file(path, "steps: []\n") == []


@pytest.mark.parametrize("text, error", [
    ("schedules:\n  - displayName: no cron\n", r"schedules\[0\]: every schedule needs a cron expression"),
    ("schedules:\n  - cron: '0 3 * *'\n", r"schedules\[0\]\.cron: '0 3 \* \*' is not a five-field cron"),
    ("schedules:\n  - cron: '0 3 * * *'\n  - cron: '61 * * * *'\n", r"schedules\[1\]\.cron"),
    ("schedules:\n  - cron: '0 3 * * *'\n    branches: main\n", r"schedules\[0\]\.branches: expected include"),
    ("schedules: nightly\n", "schedules: expected a list"),
])
def test_a_bad_schedule_names_its_file_and_entry(tmp_path, text, error):
    path = tmp_path / "bad.yml"
    path.write_text(text)
    with pytest.raises(schedules.ScheduleError, match=f"bad.yml: {error}"):
        schedules.read_file(path)


@pytest.mark.parametrize("text, expected", [
    ("2026-11-26T03:00", datetime(2026, 11, 26, 3, 0, tzinfo=timezone.utc)),
    ("2026-11-26T03:00:00Z", datetime(2026, 11, 26, 3, 0, tzinfo=timezone.utc)),
    ("2026-11-26T04:00:00+01:00", datetime(2026, 11, 26, 3, 0, tzinfo=timezone.utc)),
])
def test_times_without_an_offset_are_utc(text, expected):
    assert schedules.parse_time(text) == expected


def test_a_tick_whose_first_run_fails_runs_the_next_and_exits_1(repo, capsys):
    """`mlops ci scheduler --tick` (cli/ci_schedule.py), in-process: two pipelines due in the same minute, the first
    failing; the second still runs and succeeds, and the exit code is the worst of the two (1), not the last."""
    from ml_service.cli import main

    due = 'schedules:\n  - cron: "45 3 * * *"\n    displayName: Quarter to four\n    branches: {include: [main]}\n' \
          "    always: 'true'\n"
    (repo.root / ".pipelines" / "a-fails.yml").write_text(due + "steps:\n  - script: exit 3\n")
    (repo.root / ".pipelines" / "b-passes.yml").write_text(due + STEP)
    commit(repo, "two pipelines due at 03:45")
    assert main(["ci", "scheduler", "--tick", "--at", "2026-11-26T03:45:00Z"]) == 1
    runs = {r.pipeline: r for r in service.open_store(repo).list_runs()}
    assert sorted(runs) == ["a-fails", "b-passes"]
    assert (runs["a-fails"].result, runs["b-passes"].result) == ("failed", "succeeded")
    assert runs["a-fails"].id < runs["b-passes"].id  # the failing run came first
