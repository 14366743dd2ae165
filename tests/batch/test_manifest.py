"""Batch scoring: the manifest names only whole chunks; a job of other input or model is not continued."""
from __future__ import annotations

from pathlib import Path

import pytest

from ml_service.batch import BatchError, manifest


def test_saved_atomically_and_loaded(tmp_path):
    assert manifest.load(tmp_path) is None
    manifest.save(tmp_path, {"chunks": {"0": {"rows": 3}}})
    assert manifest.load(tmp_path) == {"chunks": {"0": {"rows": 3}}}
    assert [p.name for p in tmp_path.iterdir()] == ["_manifest.json"]


def test_an_unreadable_manifest_is_an_error(tmp_path):
    (tmp_path / "_manifest.json").write_text("{not json")
    with pytest.raises(BatchError, match="unreadable manifest"):
        manifest.load(tmp_path)


def test_only_chunks_whose_files_have_their_digest_count_as_done(tmp_path):
    (tmp_path / "p0").write_bytes(b"zero")
    (tmp_path / "p1").write_bytes(b"one, then changed")
    (tmp_path / "r2").write_bytes(b"rejects")
    chunks = {"0": {"file": "p0", "sha256": manifest.file_digest(tmp_path / "p0")},
              "1": {"file": "p1", "sha256": "0" * 64},
              "2": {"file": "p0", "sha256": manifest.file_digest(tmp_path / "p0"), "rejects_file": "r2",
                    "rejects_sha256": "0" * 64},
              "3": {"file": "gone", "sha256": "0" * 64}}
    assert list(manifest.verified(tmp_path, chunks)) == ["0"]


def test_another_job_in_the_same_output_is_refused(tmp_path):
    previous = {"model_name": "m", "model_version": "1", "input_digest": "abc", "chunk_rows": 10}
    manifest.check_same_job(previous, dict(previous), tmp_path)
    for key, value, error in (("model_version", "2", "model m version 1"), ("input_digest", "x", "other input"),
                              ("chunk_rows", 20, "--chunk-rows 10")):
        with pytest.raises(BatchError, match=error):
            manifest.check_same_job(previous, {**previous, key: value}, tmp_path)


def test_each_part_of_a_jobs_identity_is_checked():
    previous = {"model_name": "m", "model_version": "1", "input_digest": "abc", "chunk_rows": 10}
    assert manifest.IDENTITY == ("model_name", "model_version", "input_digest", "chunk_rows")
    for key in manifest.IDENTITY:
        with pytest.raises(BatchError, match="resume it with the same model version, input and chunk size"):
            manifest.check_same_job(previous, {**previous, key: "other"}, Path("out"))
    with pytest.raises(BatchError, match="holds a job with model m;"):
        manifest.check_same_job(previous, {**previous, "model_name": "n"}, Path("out"))
    manifest.check_same_job({**previous, "chunk_rows": "10"}, previous, Path("out"))  # as read back from JSON


def test_a_chunk_counts_as_done_only_when_both_its_files_are_whole(tmp_path):
    (tmp_path / "part").write_bytes(b"predictions")
    (tmp_path / "rejects").write_bytes(b"rejects")
    good = {"file": "part", "sha256": manifest.file_digest(tmp_path / "part"), "rejects_file": "rejects",
            "rejects_sha256": manifest.file_digest(tmp_path / "rejects")}
    assert manifest.verified(tmp_path, {"0": good}) == {"0": good}
    (tmp_path / "rejects").write_bytes(b"rejects!")
    assert manifest.verified(tmp_path, {"0": good}) == {}
    (tmp_path / "rejects").unlink()
    assert manifest.verified(tmp_path, {"0": good}) == {}
    assert manifest.file_digest(tmp_path / "rejects") is None
