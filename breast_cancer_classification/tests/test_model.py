"""Behavioural tests of the classifier: better than a trivial baseline, independent of row order,
a prediction for every row (missing values and unseen categories included), through score.py too."""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.dummy import DummyClassifier

from breast_cancer_classification.scoring import score
from breast_cancer_classification.training.features import CATEGORICAL, NUMERIC, model_input
from breast_cancer_classification.training.train import (
    Split, get_model_metrics, metrics_of, train_model)

METRIC = "roc_auc"  # the promotion metric of parameters.yml


def rows_with_gaps(data: pd.DataFrame) -> pd.DataFrame:
    """Three rows of the data's features: one all null, one with categories never seen in training, one as is."""
    rows = model_input(data.head(3)).reset_index(drop=True)
    if NUMERIC:
        rows[NUMERIC] = rows[NUMERIC].astype("float64")
    rows.loc[0, :] = np.nan
    for column in CATEGORICAL:
        rows.loc[1, column] = "a category never seen in training"
    return rows


def as_records(frame: pd.DataFrame) -> list[dict]:
    """The rows of frame as JSON-like records, missing values as None (what the scoring service receives)."""
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def test_better_than_predicting_the_class_frequencies(model, split):
    metrics = get_model_metrics(model, split)
    dummy = DummyClassifier(strategy="prior").fit(split.x_train, split.y_train)
    assert metrics[METRIC] > metrics_of(dummy, split.x_test, split.y_test)[METRIC]


def test_training_does_not_depend_on_row_order(model, split, training_config):
    order = np.random.default_rng(1).permutation(len(split.x_train))
    shuffled = Split(split.x_train.iloc[order], split.x_test, split.y_train.iloc[order], split.y_test)
    other = train_model(shuffled, training_config.get("model"))
    assert np.allclose(model.predict_proba(split.x_test), other.predict_proba(split.x_test), atol=1e-3)


def test_a_row_gets_the_same_prediction_in_any_batch_order(model, split):
    forward = model.predict_proba(split.x_test)
    backward = model.predict_proba(split.x_test.iloc[::-1])
    assert np.allclose(forward, backward[::-1])


def test_every_row_gets_a_label_missing_values_and_unseen_categories_included(model, data):
    frame = pd.concat([model_input(data), rows_with_gaps(data)], ignore_index=True)
    labels = model.predict(frame)
    assert len(labels) == len(frame) and set(labels) <= set(model.classes_)


def test_score_py_returns_labels_and_probabilities_for_records_with_gaps(model, model_dir, data):
    score.init(model_dir)
    result = score.run(as_records(rows_with_gaps(data)))
    classes = model.classes_.tolist()
    assert result["classes"] == classes and len(result["result"]) == 3
    assert set(result["result"]) <= set(classes)
    assert np.allclose(np.sum(result["probabilities"], axis=1), 1.0)
    assert np.array(result["probabilities"]).shape == (3, len(classes))
