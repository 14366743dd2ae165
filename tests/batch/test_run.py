"""The job's side of its run (job._Run): the answer to "start" is read exactly once, whatever it is."""
from __future__ import annotations

import json
from collections import deque
from pathlib import Path

import pytest

from ml_service.batch import BatchError
from ml_service.batch.job import JobSpec, _Run


class Answers:
    """A recorder whose answers are given in advance; receiving one that was never sent would wait forever."""

    def __init__(self, *answers):
        self.answers, self.sent = deque(answers), []

    def send(self, name, *args):
        self.sent.append((name, args))

    def answered(self):
        return bool(self.answers)

    def receive(self):
        if not self.answers:
            raise AssertionError("receive() with no answer coming: the job would wait forever")
        answer = self.answers.popleft()
        if isinstance(answer, Exception):
            raise answer
        return answer

    def call(self, name, *args):
        self.send(name, *args)
        return self.receive()


def state(**extra) -> dict:
    return {"model_name": "m", "model_version": "1", "input_digest": "d", "chunk_rows": 10,
            "chunks": {"0": {"rows": 10, "scored": 9, "rejected": 1}}, **extra}


def test_a_resumed_job_whose_run_is_gone_keeps_the_new_run(tmp_path):
    recorder, job = Answers("new", None), state(run_id="old")
    run = _Run(recorder, JobSpec("m@a", Path("in.csv"), tmp_path), job)
    run.ask()
    run.poll()
    run.finish(2.0, 9, False)
    assert recorder.sent[1] == ("finish", ("new", {"rows": 10, "scored": 9, "rejected": 1}, 2.0, 9, False))
    assert job["run_id"] == "new" and json.loads((tmp_path / "_manifest.json").read_text())["run_id"] == "new"
    assert not recorder.answers  # the answer to "finish" was read too


def test_a_start_that_failed_is_not_waited_for_again_when_the_job_ends(tmp_path):
    recorder = Answers(BatchError("cannot open the MLflow store"))
    run = _Run(recorder, JobSpec("m@a", Path("in.csv"), tmp_path), state())
    run.ask()
    with pytest.raises(BatchError, match="cannot open"):
        run.poll()
    with pytest.raises(BatchError, match="could not be started"):
        run.finish(1.0, 0, True)
    assert [name for name, _ in recorder.sent] == ["start"]


def test_a_run_never_asked_for_is_not_finished(tmp_path):
    recorder = Answers()
    _Run(recorder, JobSpec("m@a", Path("in.csv"), tmp_path), state()).finish(1.0, 0, True)
    assert recorder.sent == []
