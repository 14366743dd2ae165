"""Fixtures of this model project's own tests: its data, its contract, a trained model."""
from __future__ import annotations

import pickle
from pathlib import Path

import pandas as pd
import pytest

from diabetes_regression.training.train import split_data, train_model

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "diabetes.csv"
SUITE = ROOT / "data" / "contract" / "diabetes_suite.json"
FIXTURES = ROOT / "data" / "fixtures" / "diabetes"


@pytest.fixture(scope="session")
def diabetes() -> pd.DataFrame:
    """The good data file."""
    return pd.read_csv(DATA)


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory, diabetes) -> Path:
    """A trained Ridge model saved the way the registry stores it (MLmodel + model.pkl)."""
    path = tmp_path_factory.mktemp("model")
    (path / "model.pkl").write_bytes(pickle.dumps(train_model(split_data(diabetes), 0.4)))
    (path / "MLmodel").write_text("flavors:\n  sklearn:\n    pickled_model: model.pkl\n"
                                  "    serialization_format: pickle\n")
    return path
