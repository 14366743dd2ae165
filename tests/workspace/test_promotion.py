"""The platform's promotion rule: strictly better, in the project's direction, by more than min_improvement."""
import pytest

from ml_service.workspace.promotion import decide, direction


def test_no_champion_promotes():
    assert decide("mse", 3000.0, None).promote


def test_strictly_better_promotes_and_names_both_numbers():
    decision = decide("mse", 2999.0, 3000.0, champion_version="4")
    assert decision.promote
    assert "candidate mse 2999.0000 vs champion v4 3000.0000 on the same test split" in decision.reason


@pytest.mark.parametrize("candidate", [3000.0, 3000.1, float("nan"), float("inf")])
def test_equal_worse_or_non_finite_is_not_promoted(candidate):
    decision = decide("mse", candidate, 3000.0)
    assert not decision.promote and decision.reason.startswith("not promoted")


def test_higher_is_better_metrics():
    assert decide("roc_auc", 0.9, 0.8, higher_is_better=True).promote
    assert not decide("roc_auc", 0.8, 0.9, higher_is_better=True).promote


def test_min_improvement_is_a_margin_the_candidate_must_exceed():
    assert not decide("roc_auc", 0.905, 0.9, higher_is_better=True, min_improvement=0.01).promote
    assert decide("roc_auc", 0.915, 0.9, higher_is_better=True, min_improvement=0.01).promote
    assert "min_improvement" in decide("mse", 99.5, 100.0, min_improvement=1.0).reason


def test_a_champion_that_cannot_score_the_data_is_beaten():
    assert decide("mse", 5.0, float("nan"), champion_version="2").promote


def test_direction_reads_either_key():
    assert direction({"higher_is_better": True}) and not direction({"higher_is_better": False})
    assert not direction({"lower_is_better": True}) and direction({"lower_is_better": False})
    assert not direction({})
