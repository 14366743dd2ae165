"""A batch job resumed or rerun in the same output folder (job.py, manifest.py), in process against a real MLflow
sqlite store: a finished job is trusted only with every file of its manifest present and whole; a job stopped
mid-way continues exactly where its manifest says, redoing nothing whole and leaving no duplicate or leftover.
(A real kill -9 of a running job: tests/batch/test_job.py.)"""
from __future__ import annotations

import json

import pandas as pd
import pytest

from ml_service.batch import BatchError, manifest
from ml_service.batch.job import JobSpec, run_job
from tests.batch.conftest import rows_frame

pytestmark = pytest.mark.integration
ROWS, CHUNK = 30, 4  # eight chunks, the last one of two rows


@pytest.fixture
def job(batch_ws, tmp_path):
    """A finished job over ROWS rows (two of them rejected), and how to run it again."""
    settings, _ = batch_ws
    frame = rows_frame(ROWS).astype(object)
    frame.loc[5, "f3"] = "bad"
    frame.loc[22, "f0"] = 1.5
    frame.to_csv(tmp_path / "in.csv", index=False)
    spec = JobSpec("m@champion", tmp_path / "in.csv", tmp_path / "out", workers=1, chunk_rows=CHUNK,
                   max_reject_fraction=0.5)
    said = []
    first = run_job(settings, spec, say=said.append)
    assert (first.rows, first.scored, first.rejected, first.nothing_to_do) == (ROWS, ROWS - 2, 2, False)
    reference = pd.read_parquet(spec.output), pd.read_csv(spec.output / "_rejects.csv")

    def again():
        said.clear()
        return run_job(settings, spec, say=said.append), said

    return spec, reference, again


def files(output) -> dict:
    """Every file of the output folder: (inode, mtime) by relative path."""
    return {p.relative_to(output).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in output.rglob("*") if p.is_file()}


def same_output(spec, reference) -> None:
    got = pd.read_parquet(spec.output)
    pd.testing.assert_frame_equal(got, reference[0])
    assert got["row"].tolist() == [r for r in range(ROWS) if r not in (5, 22)]  # each row once
    pd.testing.assert_frame_equal(pd.read_csv(spec.output / "_rejects.csv"), reference[1])
    assert json.loads((spec.output / "_manifest.json").read_text())["status"] == "finished"
    assert not list(spec.output.glob(".*")) and not list((spec.output / "_rejects").glob(".*"))


def test_a_finished_job_with_every_file_whole_is_not_redone(job):
    spec, reference, again = job
    before = files(spec.output)
    result, said = again()
    assert result.nothing_to_do and (result.rows, result.scored, result.rejected) == (ROWS, ROWS - 2, 2)
    assert files(spec.output) == before  # not one file written again


@pytest.mark.parametrize("damage", ["deleted", "truncated", "changed", "rejects deleted", "rejects changed"])
def test_a_finished_job_missing_a_file_or_holding_a_changed_one_scores_that_chunk_again(job, damage):
    spec, reference, again = job
    chunks = json.loads((spec.output / "_manifest.json").read_text())["chunks"]
    part = spec.output / chunks["1"]["file"]  # chunk 1 holds the rejected row 5
    rejects = spec.output / chunks["1"]["rejects_file"]
    target = rejects if damage.startswith("rejects") else part
    if damage.endswith("deleted"):
        target.unlink()
    elif damage == "truncated":
        target.write_bytes(target.read_bytes()[:-10])
    else:
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0xFF
        target.write_bytes(bytes(data))
    untouched = {k: v for k, v in files(spec.output).items() if k.startswith("part-0000") and k != chunks["1"]["file"]}
    result, said = again()
    assert not result.nothing_to_do and "resuming after 7 finished chunk(s)" in said[0]
    assert (result.rows, result.scored, result.rejected) == (ROWS, ROWS - 2, 2)
    same_output(spec, reference)
    assert manifest.file_digest(part) == chunks["1"]["sha256"]
    assert {k: v for k, v in files(spec.output).items() if k in untouched} == untouched  # only chunk 1 redone


def stop_after(spec, chunks_done: int) -> dict:
    """Leave the output as a job killed after chunks_done chunks leaves it: the manifest names only those (status
    running); the next chunk's part was written but not yet recorded; a temporary file is half written."""
    state = json.loads((spec.output / "_manifest.json").read_text())
    for key in [k for k in state["chunks"] if int(k) >= chunks_done]:
        chunk = state["chunks"].pop(key)
        if int(key) > chunks_done:
            (spec.output / chunk["file"]).unlink()
            if chunk.get("rejects_file"):
                (spec.output / chunk["rejects_file"]).unlink()
    state["status"] = "running"
    manifest.save(spec.output, state)
    (spec.output / "_rejects.csv").unlink()
    (spec.output / f".part-{chunks_done + 1:05d}.parquet.999.tmp").write_bytes(b"half a part")
    return state


def test_a_stopped_job_resumes_to_exactly_the_uninterrupted_output_redoing_no_finished_chunk(job):
    spec, reference, again = job
    stop_after(spec, 3)
    finished = {k: v for k, v in files(spec.output).items() if k in {f"part-{i:05d}.parquet" for i in range(3)}}
    result, said = again()
    assert "resuming after 3 finished chunk(s)" in said[0] and not result.nothing_to_do
    assert (result.rows, result.scored, result.rejected) == (ROWS, ROWS - 2, 2)
    same_output(spec, reference)
    assert {k: v for k, v in files(spec.output).items() if k in finished} == finished


def test_a_stopped_job_whose_recorded_part_was_changed_scores_it_again(job):
    spec, reference, again = job
    state = stop_after(spec, 5)
    (spec.output / state["chunks"]["2"]["file"]).write_bytes(b"not the part the manifest names")
    result, said = again()
    assert "resuming after 4 finished chunk(s)" in said[0]
    same_output(spec, reference)


def test_a_job_of_another_model_or_chunk_size_in_the_output_is_refused(job, batch_ws):
    spec, reference, again = job
    settings, _ = batch_ws
    state = json.loads((spec.output / "_manifest.json").read_text())
    for key, value, what in (("model_name", "other", "model other"), ("model_version", "9", "version 9"),
                             ("input_digest", "0" * 64, "other input"), ("chunk_rows", 5, "--chunk-rows 5")):
        manifest.save(spec.output, {**state, key: value})
        before = files(spec.output)
        with pytest.raises(BatchError, match=what):
            run_job(settings, spec, say=lambda line: None)
        assert files(spec.output) == before  # nothing of the other job touched
