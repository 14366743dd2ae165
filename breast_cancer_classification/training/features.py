"""The data's columns and how they become the model's input. Plain scikit-learn.

Written by `mlops init` from the data's profile. Numeric columns: missing values imputed with the
median, then standardised. Categorical columns (text, booleans): missing values imputed with the most
frequent value, then one-hot encoded; a category never seen in training is ignored (all zeros). The
encoded table is dense, so the estimator's exact solvers apply however wide the one-hot part grows.
Columns are referred to by name, in lists: edit the lists when the data's columns change.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

TARGET = "diagnosis"
# The feature columns in the data's order (the model's input schema has the same order).
FEATURES = [
    "mean_radius", "texture_grade", "mean_perimeter", "mean_area", "mean_smoothness",
    "mean_compactness", "mean_concavity", "mean_concave_points", "mean_symmetry", "worst_radius",
    "worst_concave_points",
]
CATEGORICAL = ["texture_grade"]
NUMERIC = [column for column in FEATURES if column not in CATEGORICAL]


def model_input(df: pd.DataFrame) -> pd.DataFrame:
    """The FEATURES of df, in order; categorical columns as Python objects with missing values as NaN."""
    missing = [column for column in FEATURES if column not in df.columns]
    if missing:
        raise ValueError(f"data is missing column(s): {', '.join(map(repr, missing))}")
    frame = df[FEATURES].copy()
    for column in CATEGORICAL:
        frame[column] = frame[column].astype(object).where(frame[column].notna(), np.nan)
    return frame


def features_and_target(df: pd.DataFrame, target: str = TARGET) -> tuple[pd.DataFrame, pd.Series]:
    """The model's input frame and the target column of df."""
    if target not in df.columns:
        raise ValueError(f"data is missing the target column {target!r}")
    return model_input(df), df[target]


def preprocessor() -> ColumnTransformer:
    """Imputation and scaling of the numeric columns, imputation and one-hot encoding of the categorical ones."""
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categorical = Pipeline([("impute", SimpleImputer(strategy="most_frequent")),
                            ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False))])
    return ColumnTransformer([("numeric", numeric, NUMERIC), ("categorical", categorical, CATEGORICAL)])
