"""Split, fit and measure the classifier: the preprocessing, then a logistic regression.

Plain scikit-learn: no MLflow, no platform imports. The estimator's arguments come from parameters.yml.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from breast_cancer_classification.training.features import TARGET, features_and_target, preprocessor


@dataclass(frozen=True)
class Split:
    """Features and target for training and held-out testing."""

    x_train: pd.DataFrame
    x_test: pd.DataFrame
    y_train: pd.Series
    y_test: pd.Series


def split_data(df: pd.DataFrame, test_size: float = 0.2, random_state: int = 0, target: str = TARGET) -> Split:
    """Split the rows into train and test sets, reproducibly, each class keeping its share (stratified)."""
    x, y = features_and_target(df, target)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=test_size, random_state=random_state,
                                                        stratify=y)
    return Split(x_train, x_test, y_train, y_test)


def held_out_frame(split: Split, target: str = TARGET) -> pd.DataFrame:
    """The held-out rows, features and target: evaluate re-scores the champion on exactly these."""
    frame = split.x_test.copy()
    frame[target] = split.y_test.to_numpy()
    return frame


def train_model(split: Split, model_params: dict | None = None) -> Pipeline:
    """Fit the preprocessing and a logistic regression (model_params: its arguments, e.g. C, max_iter)."""
    model = Pipeline([("preprocess", preprocessor()), ("model", LogisticRegression(**(model_params or {})))])
    return model.fit(split.x_train, split.y_train)


def metrics_of(model, x: pd.DataFrame, y: pd.Series) -> dict[str, float]:
    """accuracy and f1_macro of any classifier on (x, y); roc_auc too when there are two classes."""
    labels = model.predict(x)
    metrics = {
        "accuracy": float(accuracy_score(y, labels)),
        "f1_macro": float(f1_score(y, labels, average="macro")),
    }
    classes = list(model.classes_)
    if len(classes) == 2:
        positive = model.predict_proba(x)[:, 1]  # the probability of classes[1]
        metrics["roc_auc"] = float(roc_auc_score(y == classes[1], positive))
    return metrics


def get_model_metrics(model, split: Split) -> dict[str, float]:
    """The metrics of the model on the held-out split."""
    return metrics_of(model, split.x_test, split.y_test)
