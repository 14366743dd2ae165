"""The batch pipeline step (step.py): which model version it scores with, in order of precedence: params.model,
else the version of its `model` alias input, else the project's champion."""
from __future__ import annotations

import json

import pytest

from ml_service.batch import BatchError
from ml_service.batch.step import _model_ref

CONTEXT = {"model_name": "project_model"}


def alias_input(tmp_path, **info) -> dict:
    path = tmp_path / "model.json"
    path.write_text(json.dumps({"name": "aliased", "alias": "qa", **info}))
    return {"model": str(path)}


def test_params_model_comes_first(tmp_path):
    assert _model_ref(alias_input(tmp_path, version="4"), {"model": "chosen@production"}, CONTEXT) == \
        "chosen@production"
    assert _model_ref({}, {"model": "chosen:2"}, CONTEXT) == "chosen:2"


def test_then_the_version_the_alias_input_resolved(tmp_path):
    assert _model_ref(alias_input(tmp_path, version="4"), {"model": ""}, CONTEXT) == "aliased:4"
    assert _model_ref(alias_input(tmp_path, version=7), {}, CONTEXT) == "aliased:7"


def test_then_the_projects_champion():
    assert _model_ref({}, {"model": ""}, CONTEXT) == "project_model@champion"
    assert _model_ref({}, {}, CONTEXT) == "project_model@champion"


@pytest.mark.parametrize("version", [None, ""])
def test_an_alias_that_names_no_version_is_an_error_not_the_champion(tmp_path, version):
    with pytest.raises(BatchError, match="model aliased has no version with alias 'qa'"):
        _model_ref(alias_input(tmp_path, version=version), {}, CONTEXT)


@pytest.mark.integration
def test_the_step_reports_the_jobs_counts_and_where_its_output_is(batch_ws, tmp_path):
    import pandas as pd

    from ml_service.batch.step import score
    from tests.batch.conftest import rows_frame

    frame = rows_frame(12).astype(object)
    frame.loc[4, "f2"] = "x"
    frame.to_csv(tmp_path / "in.csv", index=False)
    params = {"model": "m@champion", "chunk_rows": 5, "max_reject_fraction": 0.1}
    outcome = score({"data": str(tmp_path / "in.csv")}, params, tmp_path / "step", CONTEXT)
    output = tmp_path / "step" / "predictions"
    manifest = json.loads((output / "_manifest.json").read_text())
    assert outcome["metrics"] == {"rows_in": 12, "rows_scored": 11, "rows_rejected": 1}
    assert outcome["values"] == {"output": str(output), "model_version": "1", "batch_run_id": manifest["run_id"]}
    assert len(pd.read_parquet(output)) == 11 and manifest["chunk_rows"] == 5
