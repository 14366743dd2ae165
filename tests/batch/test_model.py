"""The model of a batch job (model.py): a version without a signature (untyped rows of numbers) is scored like
the same model with one, every column read as a number, in more than one worker. `mlops batch score` runs in
process (ml_service.cli.main) against a real MLflow sqlite store."""
from __future__ import annotations

import pandas as pd
import pytest

from ml_service.cli import main
from tests.batch.conftest import rows_frame
from tests.support.registered import register_folder
from tests.support.rows_score import save_regressor

pytestmark = pytest.mark.integration


def test_a_model_without_a_signature_scores_each_csv_column_as_a_number_in_every_worker(batch_ws, tmp_path):
    from ml_service.workspace.tracking import connect

    settings, _ = batch_ws
    register_folder(connect(settings), "untyped", save_regressor(tmp_path / "model", signature=False),
                    settings.experiment, artifact_location=(settings.artifact_root / settings.experiment).as_uri())
    rows_frame(40).to_csv(tmp_path / "in.csv", index=False)
    for ref, out in (("untyped:1", "untyped"), ("m@champion", "typed")):
        assert main(["batch", "score", "--model", ref, "--input", str(tmp_path / "in.csv"), "--output",
                     str(tmp_path / out), "--workers", "2", "--chunk-rows", "10"]) == 0
    untyped, typed = pd.read_parquet(tmp_path / "untyped"), pd.read_parquet(tmp_path / "typed")
    assert len(untyped) == 40 and not (tmp_path / "untyped" / "_rejects.csv").exists()
    assert untyped.iloc[:, -1].tolist() == pytest.approx(typed.iloc[:, -1].tolist())
