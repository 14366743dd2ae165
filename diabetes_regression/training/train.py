"""Split, train and measure the Ridge model. Plain scikit-learn: no platform imports."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.model_selection import train_test_split

TARGET = "Y"
FEATURES = ["AGE", "SEX", "BMI", "BP", "S1", "S2", "S3", "S4", "S5", "S6"]


@dataclass(frozen=True)
class Split:
    """Features and targets for training and held-out testing."""

    x_train: np.ndarray
    x_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray


def features_and_target(df: pd.DataFrame, target: str = TARGET) -> tuple[np.ndarray, np.ndarray]:
    """The feature matrix (FEATURES, in order) and the target vector of a frame."""
    missing = [c for c in FEATURES + [target] if c not in df.columns]
    if missing:
        raise ValueError(f"data is missing column(s): {', '.join(missing)}")
    return df[FEATURES].to_numpy(dtype=float), df[target].to_numpy(dtype=float)


def split_data(df: pd.DataFrame, test_size: float = 0.2, random_state: int = 0, target: str = TARGET) -> Split:
    """Split the frame 80/20 into train and test sets, reproducibly."""
    x, y = features_and_target(df, target)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_size, random_state=random_state
    )
    return Split(x_train, x_test, y_train, y_test)


def held_out_frame(split: Split, target: str = TARGET) -> pd.DataFrame:
    """The held-out split as a frame (features and target), to re-score other models on the same rows."""
    frame = pd.DataFrame(split.x_test, columns=FEATURES)
    frame[target] = split.y_test
    return frame


def train_model(split: Split, alpha: float) -> Ridge:
    """Fit a Ridge regression with the given regularisation strength."""
    model = Ridge(alpha=alpha)
    model.fit(split.x_train, split.y_train)
    return model


def metrics_of(model, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """mse, rmse, mae and r2 of any model with predict() on (x, y)."""
    predictions = model.predict(x)
    mse = float(mean_squared_error(y, predictions))
    return {
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        "mae": float(mean_absolute_error(y, predictions)),
        "r2": float(r2_score(y, predictions)),
    }


def get_model_metrics(model, split: Split) -> dict[str, float]:
    """mse, rmse, mae and r2 of the model on the held-out split."""
    return metrics_of(model, split.x_test, split.y_test)
