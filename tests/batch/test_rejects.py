"""Rejected rows of a batch job (job.py, worker.py): each keeps its row number, its reason and its values, in row
order whatever the number of chunks; the job fails (exit 1, its MLflow run FAILED) exactly when the rejected
share is above --max-reject-fraction, and succeeds at it. `mlops batch score` runs in process
(ml_service.cli.main) against a real MLflow sqlite store."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ml_service.batch import BatchError
from ml_service.batch.job import JobResult, JobSpec, _verdict
from ml_service.cli import main
from tests.batch.conftest import rows_frame

pytestmark = pytest.mark.integration


def batch_score(inputs, output, *args: str) -> int:
    return main(["batch", "score", "--model", "m@champion", "--input", str(inputs), "--output", str(output),
                 "--workers", "1", *args])


def run_status(settings, output) -> str:
    from ml_service.workspace.tracking import connect

    run_id = json.loads((output / "_manifest.json").read_text())["run_id"]
    return connect(settings).get_run(run_id).info.status


@pytest.fixture
def two_of_100(tmp_path):
    frame = rows_frame(100).astype(object)
    frame.loc[5, "f3"] = "not-a-number"
    frame.loc[17, "f9"] = None
    frame.to_csv(tmp_path / "in.csv", index=False)
    return tmp_path / "in.csv"


def test_a_reject_share_equal_to_the_limit_passes(batch_ws, two_of_100, tmp_path, capsys):
    settings, _ = batch_ws
    assert batch_score(two_of_100, tmp_path / "out", "--max-reject-fraction", "0.02") == 0
    assert len(pd.read_parquet(tmp_path / "out")) == 98 and run_status(settings, tmp_path / "out") == "FINISHED"
    rejects = pd.read_csv(tmp_path / "out" / "_rejects.csv")
    assert rejects["row"].tolist() == [5, 17]
    assert rejects["reason"].tolist() == ["column 'f3' is not a number: 'not-a-number'",
                                          "column 'f9' is null but required"]
    assert json.loads(rejects["values"][0])["f3"] == "not-a-number"


def test_a_reject_share_just_above_the_limit_fails_the_job_and_its_run(batch_ws, two_of_100, tmp_path, capsys):
    settings, _ = batch_ws
    assert batch_score(two_of_100, tmp_path / "out", "--max-reject-fraction", "0.0199") == 1
    assert "2 of 100 rows rejected (2.00%), above --max-reject-fraction 0.0199" in capsys.readouterr().err
    assert run_status(settings, tmp_path / "out") == "FAILED"
    assert len(pd.read_parquet(tmp_path / "out")) == 98  # the rows that fit are scored all the same
    assert batch_score(two_of_100, tmp_path / "out", "--max-reject-fraction", "0.02") == 0  # accepted on rerun


def test_no_rejects_pass_a_zero_limit(batch_ws, tmp_path):
    rows_frame(10).to_csv(tmp_path / "in.csv", index=False)
    assert batch_score(tmp_path / "in.csv", tmp_path / "out", "--max-reject-fraction", "0") == 0
    assert not (tmp_path / "out" / "_rejects.csv").exists()


@given(rows=st.integers(1, 10 ** 6), share=st.floats(0, 1), limit=st.floats(0, 1))
def test_the_verdict_fails_exactly_above_the_limit(rows, share, limit):
    rejected = int(rows * share)
    result = JobResult(rows=rows, scored=rows - rejected, rejected=rejected, seconds=0.0, run_id="r",
                       model_name="m", model_version="1")
    spec = JobSpec("m@champion", Path("in.csv"), Path("out"), max_reject_fraction=limit)
    if rejected > limit * rows:
        with pytest.raises(BatchError, match=f"{rejected:,} of {rows:,} rows rejected"):
            _verdict(spec, result, say=lambda line: None)
    else:
        assert _verdict(spec, result, say=lambda line: None) is result


def test_rejects_of_many_chunks_are_listed_in_row_order_with_their_reasons(batch_ws, tmp_path):
    frame = rows_frame(48).astype(object)
    bad = list(range(1, 48, 2))  # the second row of each of the 24 chunks
    for row in bad:
        frame.loc[row, "f0"] = f"x{row}"
    frame.to_csv(tmp_path / "in.csv", index=False)
    assert batch_score(tmp_path / "in.csv", tmp_path / "out", "--chunk-rows", "2", "--max-reject-fraction", "1") == 0
    rejects = pd.read_csv(tmp_path / "out" / "_rejects.csv")
    assert rejects["row"].tolist() == bad
    assert rejects["reason"].tolist() == [f"column 'f0' is not a number: 'x{row}'" for row in bad]
    assert pd.read_parquet(tmp_path / "out")["row"].tolist() == list(range(0, 48, 2))


@pytest.mark.parametrize("args, accepted", [
    (["--chunk-rows", "1"], True), (["--chunk-rows", "0"], False),
    (["--workers", "0"], True), (["--workers", "-1"], False),
    (["--max-reject-fraction", "1"], True), (["--max-reject-fraction", "0"], True),
    (["--max-reject-fraction", "1.0001"], False), (["--max-reject-fraction", "-0.0001"], False),
])
def test_the_options_take_their_bounds_and_refuse_beyond(batch_ws, tmp_path, capsys, args, accepted):
    rows_frame(3).to_csv(tmp_path / "in.csv", index=False)
    code = main(["batch", "score", "--model", "m@champion", "--input", str(tmp_path / "in.csv"),
                 "--output", str(tmp_path / "out"), *args])
    if accepted:
        assert code == 0 and len(pd.read_parquet(tmp_path / "out")) == 3
    else:
        assert code == 2 and not (tmp_path / "out").exists()
        assert "--workers >= 0, --chunk-rows >= 1 and 0 <= --max-reject-fraction <= 1" in capsys.readouterr().err


def test_rejected_rows_show_whole_numbers_as_written(batch_ws, tmp_path, capsys):
    frame = rows_frame(20).astype(object)
    frame.loc[3, "f1"] = 7  # a whole number in a numeric column (read as float64)
    frame.loc[3, "f2"] = 2.5
    frame.loc[3, "f9"] = None  # the reason the row is rejected
    frame.to_csv(tmp_path / "in.csv", index=False)
    assert batch_score(tmp_path / "in.csv", tmp_path / "out", "--max-reject-fraction", "1") == 0
    values = json.loads(pd.read_csv(tmp_path / "out" / "_rejects.csv")["values"][0])
    assert (values["f1"], values["f2"], values["f9"]) == (7, 2.5, None)
    assert '"f1": 7,' in pd.read_csv(tmp_path / "out" / "_rejects.csv")["values"][0]


def test_a_job_without_rejects_leaves_no_rejects_file_or_folder(batch_ws, tmp_path, capsys):
    rows_frame(30).to_csv(tmp_path / "in.csv", index=False)
    assert batch_score(tmp_path / "in.csv", tmp_path / "out") == 0
    assert len(pd.read_parquet(tmp_path / "out")) == 30
    assert not (tmp_path / "out" / "_rejects.csv").exists() and not (tmp_path / "out" / "_rejects").exists()
