"""A workspace for in-process batch jobs: a real MLflow sqlite store (a copy of an empty one) in a temp dir,
with model `m` version 1 (tests/support/rows_score.py's regression, loaded by the default pyfunc score module)
holding the alias `champion`. Jobs run through `ml_service.cli.main` or `run_job`, in this process: the
workers are forked from it."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd
import pytest

from tests.conftest import fresh_store, workspace_env
from tests.support.registered import register_folder
from tests.support.rows_score import COLUMNS, save_regressor

ROW = [59, 2.0, 32.1, 101.0, 157.0, 93.2, 38.0, 4.0, 4.8598, 87.0]


@pytest.fixture(scope="module")
def batch_ws(tmp_path_factory):
    """(settings, model folder) of a workspace where m@champion is version 1."""
    state = tmp_path_factory.mktemp("batch-ws")
    with pytest.MonkeyPatch.context() as patch:
        for key, value in workspace_env(state).items():
            patch.setenv(key, value)
        for key in ("MLOPS_TRACKING_URI", "MLOPS_ARTIFACT_ROOT", "MLOPS_MODEL", "MLOPS_MODEL_NAME", "MLOPS_EXPERIMENT",
                    "MLOPS_BUILD_ID", "MLOPS_BUILD_URI"):
            patch.delenv(key, raising=False)
        from ml_service.config import load_settings
        from ml_service.workspace.tracking import connect

        settings = load_settings()
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        fresh_store(settings.state_dir / "mlflow.db")
        assert settings.tracking_uri == f"sqlite:///{settings.state_dir / 'mlflow.db'}"
        client = connect(settings)
        folder = save_regressor(state / "model")
        version = register_folder(client, "m", folder, settings.experiment,
                                  artifact_location=(settings.artifact_root / settings.experiment).as_uri())
        folder = Path(unquote(urlparse(client.get_run(version.run_id).info.artifact_uri).path)) / "model"
        client.set_registered_model_alias("m", "champion", "1")
        yield settings, folder


def rows_frame(n: int) -> pd.DataFrame:
    """n distinct rows of the regression's ten columns (f0 a whole number)."""
    frame = pd.DataFrame([[float(v) for v in ROW] for _ in range(n)], columns=COLUMNS)
    frame["f0"] = [18 + i % 60 for i in range(n)]
    frame["f1"] = [float(i) for i in range(n)]
    return frame
