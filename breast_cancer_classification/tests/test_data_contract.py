"""The project's data passes its data contract; a copy with a missing column or a missing target does not."""
from __future__ import annotations

import pytest

from breast_cancer_classification.training.features import FEATURES
from ml_service.data.contract import validate_file


def failures_of(frame, suite, tmp_path) -> set[tuple[str, str]]:
    """(expectation, column) of each failed check when frame is validated as a CSV file."""
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    result = validate_file(path, suite)
    return {(check.expectation, check.column) for check in result.failures}


def test_the_data_passes_its_contract(model_entry):
    result = validate_file(model_entry.data, model_entry.contract)
    assert result.success, result.summary()


@pytest.mark.parametrize("position", [0, -1])
def test_a_missing_column_fails_the_contract(model_entry, data, tmp_path, position):
    failures = failures_of(data.drop(columns=[FEATURES[position]]), model_entry.contract, tmp_path)
    assert ("expect_table_columns_to_match_ordered_list", "") in failures


def test_a_missing_target_fails_the_contract(model_entry, data, tmp_path):
    broken = data.astype({model_entry.target: object})
    broken.loc[broken.index[:3], model_entry.target] = None
    failures = failures_of(broken, model_entry.contract, tmp_path)
    assert ("expect_column_values_to_not_be_null", model_entry.target) in failures
