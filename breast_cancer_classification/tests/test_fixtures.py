"""The example's data: regenerated exactly by data.py, and each deliberately bad fixture fails its contract."""
from __future__ import annotations

import pandas as pd
import pytest

from breast_cancer_classification.data import DATA_DIR, FIXTURES, write_all
from ml_service.data.contract import validate_file


@pytest.mark.parametrize("fixture, expectation, column", [
    ("missing_column", "expect_table_columns_to_match_ordered_list", ""),
    ("unknown_category", "expect_column_values_to_be_in_set", "texture_grade"),
    ("out_of_range", "expect_column_values_to_be_between", "mean_area"),
    ("null_target", "expect_column_values_to_not_be_null", "diagnosis"),
])
def test_each_bad_fixture_fails_the_right_expectation(model_entry, fixture, expectation, column):
    result = validate_file(DATA_DIR / FIXTURES / f"{fixture}.csv", model_entry.contract)
    assert not result.success
    assert (expectation, column) in {(f.expectation, f.column) for f in result.failures}, result.summary()


def test_the_data_has_a_category_gaps_and_text_labels(data):
    assert set(data["texture_grade"]) == {"smooth", "medium", "coarse"}
    assert 0.03 < data["mean_smoothness"].isna().mean() < 0.07
    assert set(data["diagnosis"]) == {"malignant", "benign"} and len(data) == 569


def test_committed_data_matches_the_generator(tmp_path):
    for path in write_all(tmp_path):
        committed = DATA_DIR / path.relative_to(tmp_path)
        assert path.read_bytes() == committed.read_bytes(), f"{committed} is stale: run `make data MODEL=...`"


def test_the_smoke_payload_holds_a_null_and_a_category(model_entry):
    import json

    records = json.loads(model_entry.smoke_payload.read_text())["data"]
    assert any(value is None for record in records for value in record.values())
    assert all(record["texture_grade"] in {"smooth", "medium", "coarse"} for record in records)
    assert pd.DataFrame(records).shape == (2, 11)
