"""Where a workspace's studies live (tune/storage.py), in-process: the embedded workspace's own tune.db, the
MLOPS_TUNE_STORAGE URL over it when set (a worker joining a team study), and the password never shown."""
from __future__ import annotations

from ml_service.tune.storage import Storage, storage_for


def test_an_embedded_workspace_keeps_its_studies_beside_its_own_store(workspace, tmp_path):
    found = storage_for(workspace, environ={})
    assert (found.kind, found.url) == ("sqlite", f"sqlite:///{workspace.state_dir / 'tune.db'}")


def test_the_tune_storage_url_wins_over_the_embedded_workspace(workspace):
    url = "postgresql+psycopg2://mlflow@db-host:5432/mlops_tune"
    assert storage_for(workspace, environ={"MLOPS_TUNE_STORAGE": url}) == Storage(url, "url")


def test_a_storage_url_is_shown_without_its_password():
    found = Storage("postgresql+psycopg2://mlflow:s3cret@db-host:5432/mlops_tune", "url")
    assert found.shown == "postgresql+psycopg2://mlflow:***@db-host:5432/mlops_tune"
