"""Batch scoring: the manifest names only whole chunks; a job of other input or model is not continued."""
from __future__ import annotations

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
