"""Fixtures of the project's own tests: its data and contract (as mlops.yml declares them), a trained model."""
from __future__ import annotations

import pickle
from pathlib import Path

import pandas as pd
import pytest
import yaml

from breast_cancer_classification.training.train import split_data, train_model

PROJECT = "breast_cancer_classification"
ROOT = Path(__file__).resolve().parents[2]
PARAMETERS = ROOT / PROJECT / "parameters.yml"


@pytest.fixture(scope="session")
def model_entry():
    """This project's entry in mlops.yml: data, contract, target."""
    from ml_service.config import load_settings

    return load_settings({"MLOPS_ROOT": str(ROOT)}).select(PROJECT).model


@pytest.fixture(scope="session")
def data(model_entry) -> pd.DataFrame:
    """The project's data file."""
    return pd.read_csv(model_entry.data)


@pytest.fixture(scope="session")
def training_config() -> dict:
    """The training: section of parameters.yml."""
    return yaml.safe_load(PARAMETERS.read_text())["training"]


@pytest.fixture(scope="session")
def split(data, training_config, model_entry):
    """The train/test split the pipeline makes."""
    return split_data(data, training_config["test_size"], training_config["random_state"], model_entry.target)


@pytest.fixture(scope="session")
def model(split, training_config):
    """The model trained the way the pipeline trains it."""
    return train_model(split, training_config.get("model"))


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, model) -> Path:
    """The trained model saved the way the registry stores it (MLmodel + model.pkl)."""
    path = tmp_path_factory.mktemp("model")
    (path / "model.pkl").write_bytes(pickle.dumps(model))
    (path / "MLmodel").write_text("flavors:\n  sklearn:\n    pickled_model: model.pkl\n"
                                  "    serialization_format: pickle\n")
    return path
