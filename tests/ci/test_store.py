"""The run store (store.py): runs newest first within a limit, status transitions (queued -> running only once,
completed drops secret outputs), records in creation order, one pending approval per stage and one decision per
approval, the secret outputs file private to its owner, and the reconcile of dead runs and expired approvals."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
import time

import pytest

from ml_service.ci.server.store import Store


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "ci")


def queue(store, pipeline="p", **fields) -> int:
    run_id = store.create_run(pipeline, f"{pipeline}.yml", "Manual", "main", "c0ffee", "dev", {"a": 1}, "/src")
    if fields:
        store.update_run(run_id, **fields)
    return run_id


@pytest.mark.parametrize("count, limit", [(5, 3), (3, 3), (2, 3), (0, 3), (4, 1)])
def test_runs_are_listed_newest_first_within_the_limit(store, count, limit):
    ids = [queue(store) for _ in range(count)]
    listed = [r.id for r in store.list_runs(limit)]
    assert listed == sorted(ids, reverse=True)[:limit]


def test_a_queued_run_holds_what_it_was_queued_with(store):
    run = store.get_run(queue(store))
    assert (run.status, run.result, run.params, run.resources, run.state, run.triggered_by) == \
        ("queued", "", {"a": 1}, {}, {}, 0)
    with pytest.raises(KeyError, match="no run 99"):
        store.get_run(99)


def test_a_run_starts_once_and_only_from_queued_or_waiting(store):
    run_id = queue(store)
    assert store.start_run(run_id, 123, "owner", 1.5)
    run = store.get_run(run_id)
    assert (run.status, run.pid, run.owner, run.started) == ("running", 123, "owner", 1.5)
    assert not store.start_run(run_id, 456, "other", 2.0)  # already running
    assert store.get_run(run_id).pid == 123
    store.update_run(run_id, status="waiting")
    assert store.start_run(run_id, 789, "again", 3.0)  # resumed after an approval
    for status in ("completed",):
        store.update_run(run_id, status=status, result="canceled")
        assert not store.start_run(run_id, 1, "late", 4.0)
        assert store.get_run(run_id).status == "completed"


def test_records_keep_their_creation_order_and_update_in_place(store):
    run_id = queue(store)
    for path in ("S", "S/J", "S/J/00", "S/J/01"):
        store.set_record(run_id, path, "step", status="running", display=path)
    store.set_record(run_id, "S/J/00", "step", status="completed", result="Succeeded")
    got = store.records(run_id)
    assert [r["path"] for r in got] == ["S", "S/J", "S/J/00", "S/J/01"]
    assert (got[2]["status"], got[2]["result"], got[2]["display"]) == ("completed", "Succeeded", "S/J/00")
    assert store.records(queue(store)) == []


def test_one_pending_approval_per_stage_and_one_decision_per_approval(store):
    run_id = queue(store)
    first = store.request_approval(run_id, "Deploy", "Ship", "production", 60)
    assert store.request_approval(run_id, "Deploy", "Ship", "production", 60) == first  # reused while pending
    other = store.request_approval(run_id, "Other", "Ship", "production", 60)
    assert other != first
    assert store.decide(first, "approved", "ada", "ok", "session")
    assert not store.decide(first, "rejected", "bob", "too late", "token")
    approval = store.approvals(run_id, "approved")[0]
    assert (approval["approver"], approval["approver_proof"], approval["comment"]) == ("ada", "session", "ok")
    assert [a["stage"] for a in store.approvals(status="pending")] == ["Other"]
    assert store.request_approval(run_id, "Deploy", "Ship", "production", 60) not in (first, other)  # a new request


def test_secret_outputs_are_private_and_gone_when_the_run_completes(store):
    run_id = queue(store)
    store.save_secrets(run_id, {"S/J.step.v": "hush-hush"})
    path = store.directory / "secrets" / f"{run_id}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert store.load_secrets(run_id) == {"S/J.step.v": "hush-hush"}
    assert "hush-hush" not in store.path.read_bytes().decode(errors="replace")
    store.update_run(run_id, status="waiting")
    assert path.exists()  # kept while the run can resume
    store.update_run(run_id, status="completed", result="succeeded")
    assert not path.exists() and store.load_secrets(run_id) == {}


def test_a_run_whose_engine_died_is_ended_failed_with_the_reason_and_a_live_one_is_kept(store):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    gone = queue(store, status="running", pid=dead.pid)
    store.save_secrets(gone, {"k": "hush"})
    store.set_record(gone, "S/J/00", "step", status="running", display="step")
    alive = queue(store, status="running", pid=os.getpid())
    waiting = queue(store, status="waiting", pid=dead.pid)
    assert store.reconcile() == [gone]
    run = store.get_run(gone)
    assert (run.status, run.result) == ("completed", "failed") and run.finished
    records = {r["path"]: r for r in store.records(gone)}
    assert (records["S/J/00"]["status"], records["S/J/00"]["result"]) == ("completed", "Failed")
    assert "killed" in records["__killed"]["detail"] and records["__killed"]["result"] == "Failed"
    assert store.load_secrets(gone) == {}
    assert store.get_run(alive).status == "running" and store.get_run(waiting).status == "waiting"


def test_a_dead_runs_finished_steps_keep_their_result_and_only_unfinished_ones_fail(store):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    gone = queue(store, status="running", pid=dead.pid)
    store.set_record(gone, "S/J/00", "step", status="completed", result="Succeeded")
    store.set_record(gone, "S/J/01", "step", status="completed", result="Skipped")
    store.set_record(gone, "S/J/02", "step", status="running")
    store.set_record(gone, "S/J/03", "step")
    assert store.reconcile() == [gone]
    results = {r["path"]: r["result"] for r in store.records(gone)}
    assert [results[f"S/J/0{i}"] for i in range(4)] == ["Succeeded", "Skipped", "Failed", "Failed"]


def test_a_counter_counts_per_pipeline_and_prefix(store):
    first, other = queue(store, pipeline="a"), queue(store, pipeline="b")
    assert (store.counter(first, "1.x", 100), store.counter(other, "1.x", 100)) == (100, 100)
    assert store.counter(queue(store, pipeline="a"), "1.x", 100) == 101
    assert store.counter(queue(store, pipeline="b"), "1.x", 100) == 101


def test_an_approval_times_out_only_after_its_deadline(store):
    expired, current = queue(store, status="waiting"), queue(store, status="waiting")
    store.request_approval(expired, "Deploy", "Ship", "production", 3600)
    store.request_approval(current, "Deploy", "Ship", "production", 3600)
    with store._db() as db:
        db.execute("UPDATE approvals SET timeout_at = ? WHERE run_id = ?", (time.time() - 1, expired))
    store.set_record(expired, "Deploy/Ship", "job", status="waiting")
    assert store.reconcile() == [expired]
    run = store.get_run(expired)
    assert (run.status, run.result) == ("completed", "rejected")
    assert store.approvals(expired)[0]["status"] == "timed out"
    assert store.records(expired)[0]["result"] == "Failed"
    assert store.get_run(current).status == "waiting" and store.approvals(current)[0]["status"] == "pending"


def test_logs_artifacts_and_work_folders_are_per_run(store):
    assert store.log_path(7, "S.J.00") == store.directory / "logs" / "7" / "S.J.00.log"
    assert store.log_path(7, "x").parent.is_dir()
    assert store.artifacts_dir(7) == store.directory / "artifacts" / "7"
    assert store.work_dir(8).is_dir() and store.work_dir(8) != store.work_dir(9)
