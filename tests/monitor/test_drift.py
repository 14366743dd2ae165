"""Drift statistics: shifted samples are flagged, samples of the same distribution are not."""
from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml_service.monitor import drift


def gaussian(n, mean=0.0, sd=1.0, seed=0):
    rng = random.Random(seed)
    return [rng.gauss(mean, sd) for _ in range(n)]


def test_a_sample_of_the_same_distribution_does_not_drift():
    column = drift.numeric_drift("x", gaussian(2000), gaussian(300, seed=1), psi_threshold=0.2, p_value=0.01)
    assert column.psi < 0.1 and column.p_value > 0.01 and not column.drifted


def test_a_shifted_sample_drifts():
    column = drift.numeric_drift("x", gaussian(2000), gaussian(300, mean=1.0, seed=1), 0.2, 0.01)
    assert column.psi > 0.2 and column.p_value < 1e-6 and column.drifted
    assert column.current_mean - column.reference_mean == pytest.approx(1.0, abs=0.2)


def test_a_small_shift_on_a_large_sample_is_not_drift_because_psi_stays_low():
    column = drift.numeric_drift("x", gaussian(20000), gaussian(20000, mean=0.08, seed=1), 0.2, 0.01)
    assert column.p_value < 0.01 and column.psi < 0.2 and not column.drifted  # the test alone would flag it


def test_categories_drift_by_their_frequencies():
    reference = ["a"] * 500 + ["b"] * 500
    same = drift.categorical_drift("c", reference, ["a"] * 52 + ["b"] * 48, 0.2, 0.01)
    moved = drift.categorical_drift("c", reference, ["a"] * 90 + ["b"] * 5 + ["new"] * 5, 0.2, 0.01)
    assert not same.drifted and moved.drifted and moved.test == "chi2"


def test_psi_of_known_shares():
    assert drift.psi([0.5, 0.5], [0.5, 0.5]) == 0
    assert drift.psi([0.5, 0.5], [0.9, 0.1]) == pytest.approx(0.4 * 0.5878 + 0.4 * 1.6094, abs=1e-3)


def test_compare_flags_only_the_shifted_feature_and_the_predictions():
    reference = {"a": gaussian(1000), "b": gaussian(1000, seed=2)}
    current_a, current_b = gaussian(200, mean=2.0, seed=3), gaussian(200, seed=4)
    rows = [[a, b] for a, b in zip(current_a, current_b)]
    result = drift.compare(["a", "b"], reference, rows, reference["a"], current_a, 0.2, 0.01)
    assert result.drifted_features == ["a"] and result.prediction.drifted and result.drifted
    steady = drift.compare(["a", "b"], reference, [[a, b] for a, b in zip(gaussian(200, seed=5), current_b)],
                           [], [], 0.2, 0.01)
    assert not steady.drifted and steady.prediction is None


def _at_threshold(make, reference, current):
    """(the column measured with thresholds it cannot reach, the same at exactly its own PSI and p-value)."""
    free = make("x", reference, current, psi_threshold=1e-12, p_value=1.0)
    exact = make("x", reference, current, psi_threshold=free.psi, p_value=free.p_value)
    return free, exact


@pytest.mark.parametrize("make, reference, current", [
    (drift.numeric_drift, gaussian(2000), gaussian(300, mean=1.0, seed=1)),
    (drift.categorical_drift, ["a"] * 500 + ["b"] * 500, ["a"] * 90 + ["b"] * 10),
])
def test_a_column_drifts_only_strictly_above_the_psi_and_strictly_below_the_p_value(make, reference, current):
    free, exact = _at_threshold(make, reference, current)
    assert free.drifted and free.psi > 0.2 and free.p_value < 0.01
    assert not exact.drifted  # PSI equal to its threshold, p-value equal to its own: neither is past it
    below = math.nextafter(free.psi, -math.inf)
    assert make("x", reference, current, psi_threshold=below, p_value=math.nextafter(free.p_value, 1)).drifted
    assert not make("x", reference, current, psi_threshold=free.psi, p_value=1.0).drifted
    assert not make("x", reference, current, psi_threshold=below, p_value=free.p_value).drifted


SAMPLES = st.lists(st.floats(-100, 100, allow_nan=False), min_size=20, max_size=120)


@settings(max_examples=60, deadline=None)
@given(reference=SAMPLES, current=SAMPLES, psi_threshold=st.floats(0.001, 3), p_value=st.floats(0.0001, 0.9999))
def test_a_numeric_column_drifts_exactly_when_psi_is_above_and_p_below_their_thresholds(
        reference, current, psi_threshold, p_value):
    column = drift.numeric_drift("x", reference, current, psi_threshold, p_value)
    assert column.drifted == (column.psi > psi_threshold and column.p_value < p_value)


@settings(max_examples=60, deadline=None)
@given(reference=st.lists(st.sampled_from("abcd"), min_size=10, max_size=80),
       current=st.lists(st.sampled_from("abcde"), min_size=10, max_size=80),
       psi_threshold=st.floats(0.001, 3), p_value=st.floats(0.0001, 0.9999))
def test_a_categorical_column_drifts_exactly_when_psi_is_above_and_p_below_their_thresholds(
        reference, current, psi_threshold, p_value):
    column = drift.categorical_drift("c", reference, current, psi_threshold, p_value)
    assert column.drifted == (len(set(reference) | set(current)) > 1 and column.psi > psi_threshold
                              and column.p_value < p_value)


def test_drifted_predictions_alone_are_drift():
    steady = drift.ColumnDrift("a", "numeric", 0.01, "ks", 0.1, 0.5, False)
    moved = drift.ColumnDrift("prediction", "numeric", 0.9, "ks", 0.6, 1e-9, True)
    assert drift.DriftResult([steady], moved).drifted and not drift.DriftResult([steady], moved).drifted_features
    assert not drift.DriftResult([steady], None).drifted
    assert not drift.DriftResult([steady], drift.ColumnDrift("prediction", "numeric", 0, "ks", 0, 1, False)).drifted
    assert drift.DriftResult([steady, moved], None).drifted_features == ["prediction"]


def test_compare_leaves_out_missing_values_and_measures_predictions_only_when_both_sides_have_them():
    reference = {"a": gaussian(500) + [None, ""]}
    rows = [[v] for v in gaussian(100, seed=3)] + [[None], []]
    result = drift.compare(["a"], reference, rows, [1.0] * 10, [None, None], 0.2, 0.01)
    assert result.prediction is None and result.current_rows == 102 and result.reference_rows == 502
    assert not result.features[0].drifted
