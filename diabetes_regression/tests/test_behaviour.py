"""Behavioural tests of the trained model: direction, invariance, minimum quality."""
import numpy as np
import pytest

from diabetes_regression.training.train import FEATURES, get_model_metrics, split_data, train_model


@pytest.fixture(scope="module")
def trained(diabetes):
    split = split_data(diabetes)
    return train_model(split, 0.4), split


def test_higher_bmi_predicts_higher_progression(trained, diabetes):
    model, _ = trained
    row = diabetes[FEATURES].median().to_numpy()
    lean, heavy = row.copy(), row.copy()
    lean[FEATURES.index("BMI")], heavy[FEATURES.index("BMI")] = 22.0, 35.0
    low, high = model.predict([lean, heavy])
    assert high > low + 20


def test_training_is_invariant_to_row_order(diabetes):
    split = split_data(diabetes)
    shuffled = split_data(diabetes)
    order = np.random.default_rng(1).permutation(len(shuffled.x_train))
    shuffled = type(split)(shuffled.x_train[order], shuffled.x_test, shuffled.y_train[order], shuffled.y_test)
    a, b = train_model(split, 0.4), train_model(shuffled, 0.4)
    assert np.allclose(a.coef_, b.coef_) and np.isclose(a.intercept_, b.intercept_)


def test_batch_predictions_do_not_depend_on_batch_order(trained):
    model, split = trained
    forward = model.predict(split.x_test)
    backward = model.predict(split.x_test[::-1])
    assert np.allclose(forward, backward[::-1])


def test_minimum_quality_on_held_out_split(trained):
    model, split = trained
    metrics = get_model_metrics(model, split)
    assert metrics["r2"] >= 0.30
    # and clearly better than always predicting the training mean
    baseline = float(np.mean((split.y_test - split.y_train.mean()) ** 2))
    assert metrics["mse"] < 0.8 * baseline


def test_huge_regularisation_is_worse(diabetes):
    split = split_data(diabetes)
    good = get_model_metrics(train_model(split, 0.4), split)["mse"]
    bad = get_model_metrics(train_model(split, 1e6), split)["mse"]
    assert bad > good
