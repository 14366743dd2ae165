import pytest

from diabetes_regression.training.train import FEATURES, get_model_metrics, split_data, train_model


def test_split_is_80_20_and_reproducible(diabetes):
    first, second = split_data(diabetes), split_data(diabetes)
    assert len(first.x_train) == 353 and len(first.x_test) == 89
    assert (first.y_test == second.y_test).all()


def test_metrics_are_consistent(diabetes):
    split = split_data(diabetes)
    metrics = get_model_metrics(train_model(split, 0.4), split)
    assert set(metrics) == {"mse", "rmse", "mae", "r2"}
    assert metrics["rmse"] == pytest.approx(metrics["mse"] ** 0.5)


def test_missing_column_is_named(diabetes):
    with pytest.raises(ValueError, match="BMI"):
        split_data(diabetes.drop(columns=["BMI"]))


def test_features_match_the_data(diabetes):
    assert list(diabetes.columns) == FEATURES + ["Y"]
