"""Shared fixtures. Every workspace is a real MLflow sqlite store in a temporary folder."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ml_service.config import PACKAGE_ROOT, load_settings

ROOT = PACKAGE_ROOT
DATA = ROOT / "data" / "diabetes.csv"
SUITE = ROOT / "data" / "contract" / "diabetes_suite.json"
FIXTURES = ROOT / "data" / "fixtures"


@pytest.fixture(scope="session")
def diabetes() -> pd.DataFrame:
    """The good data file."""
    return pd.read_csv(DATA)


def workspace_env(state_dir: Path) -> dict[str, str]:
    """Environment that points the project at a workspace under state_dir."""
    return {"MLOPS_ROOT": str(ROOT), "MLOPS_STATE_DIR": str(state_dir), "MLFLOW_DISABLE_TELEMETRY": "true"}


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """Settings for a fresh, empty workspace in a temp dir (environment patched for subprocesses too)."""
    for key, value in workspace_env(tmp_path / "ws").items():
        monkeypatch.setenv(key, value)
    for key in ("MLOPS_TRACKING_URI", "MLOPS_ARTIFACT_ROOT", "MLOPS_BUILD_ID", "MLOPS_BUILD_URI"):
        monkeypatch.delenv(key, raising=False)
    return load_settings()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, diabetes):
    """A trained Ridge model saved the way the registry stores it (MLmodel + model.pkl)."""
    import pickle

    from diabetes_regression.training.train import split_data, train_model

    path = tmp_path_factory.mktemp("model")
    (path / "model.pkl").write_bytes(pickle.dumps(train_model(split_data(diabetes), 0.4)))
    (path / "MLmodel").write_text("flavors:\n  sklearn:\n    pickled_model: model.pkl\n"
                                  "    serialization_format: pickle\n")
    return path


@pytest.fixture(scope="session")
def docker_engine():
    """A Docker SDK client. Without an engine: skip, or fail when MLOPS_REQUIRE_DOCKER=1 (CI)."""
    import os

    from ml_service.deploy.image import ImageError, docker_client

    try:
        return docker_client()
    except ImageError as exc:
        if os.environ.get("MLOPS_REQUIRE_DOCKER") == "1":
            pytest.fail(str(exc))
        pytest.skip(str(exc))
