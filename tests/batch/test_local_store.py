"""Batch scoring finds a model version in the embedded workspace's sqlite store without MLflow, and answers
exactly what MLflow answers there, or None (then MLflow is asked): also None for a version that cannot be traced
to a run of the project's experiment (then MLflow's path refuses it, workspace/provenance.py)."""
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from ml_service.batch import BatchError, local_store
from tests.conftest import ROOT
from tests.support.registered import register_folder
from tests.support.rows_score import save_regressor

EXPERIMENT = "batch_project"


def register(client, folder: Path, model_folder: Path) -> Path:
    """Register model_folder from a run of EXPERIMENT; the run's copy of it (what MLflow names as the source)."""
    version = register_folder(client, "m", model_folder, EXPERIMENT, artifact_location=(folder / "artifacts").as_uri())
    return Path(unquote(urlparse(version.source).path))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A real MLflow sqlite store with two versions of model 'm' (champion: 1)."""
    import mlflow

    folder = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{folder}/mlflow.db"
    client = mlflow.MlflowClient(uri, uri)
    logged = {n: register(client, folder, save_regressor(folder / f"model-{n}")) for n in (1, 2)}
    client.set_registered_model_alias("m", "champion", "1")
    return client, uri, logged


def test_an_alias_or_a_version_is_the_model_folder_mlflow_names(store):
    client, uri, logged = store
    assert local_store.find(uri, "m@champion", EXPERIMENT) == ("m", "1", logged[1])
    assert local_store.find(uri, "models:/m:2", EXPERIMENT) == ("m", "2", logged[2])
    client.set_registered_model_alias("m", "champion", "2")  # read live, never cached
    assert local_store.find(uri, "m@champion", EXPERIMENT) == ("m", "2", logged[2])
    assert Path(unquote(urlparse(client.get_model_version_by_alias("m", "champion").source).path)) == logged[2]
    client.set_registered_model_alias("m", "champion", "1")


@pytest.mark.parametrize("ref", ["m@nope", "m:7", "other@champion", "m:x"])
def test_what_is_not_found_is_left_to_mlflow(store, ref):
    assert local_store.find(store[1], ref, EXPERIMENT) is None


def test_a_deleted_version_is_not_found(store, tmp_path):
    client, uri, _ = store
    register(client, tmp_path, save_regressor(tmp_path / "model-3"))
    assert local_store.find(uri, "m:3", EXPERIMENT) is not None
    client.delete_model_version("m", "3")
    assert local_store.find(uri, "m:3", EXPERIMENT) is None


def test_other_stores_are_left_to_mlflow(store, tmp_path):
    assert local_store.find("http://127.0.0.1:5000", "m@champion", EXPERIMENT) is None
    assert local_store.find(f"sqlite:///{tmp_path}/none.db", "m@champion", EXPERIMENT) is None
    (tmp_path / "junk.db").write_bytes(b"not a database")
    assert local_store.find(f"sqlite:///{tmp_path}/junk.db", "m@champion", EXPERIMENT) is None
    with pytest.raises(BatchError, match="NAME@ALIAS or NAME:VERSION"):
        local_store.find(store[1], "m", EXPERIMENT)


def test_finding_a_model_does_not_import_mlflow(store):
    code = ("import sys; from ml_service.batch import local_store; "
            f"print(local_store.find({store[1]!r}, 'm@champion', {EXPERIMENT!r})[1], 'mlflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.split() == ["1", "False"]


def test_a_version_not_ready_is_left_to_mlflow(store, tmp_path):
    """A version whose registration has not finished (or failed) has no model to load yet."""
    import sqlite3

    client, uri, _ = store
    logged = register(client, tmp_path, save_regressor(tmp_path / "model-4"))
    version = client.search_model_versions("name = 'm'", order_by=["version_number DESC"])[0].version
    assert local_store.find(uri, f"m:{version}", EXPERIMENT) == ("m", str(version), logged)
    database = sqlite3.connect(uri[len("sqlite:///"):])
    try:
        for status in ("PENDING_REGISTRATION", "FAILED_REGISTRATION"):
            database.execute("UPDATE model_versions SET status = ? WHERE name = 'm' AND version = ?",
                             (status, version))
            database.commit()
            assert local_store.find(uri, f"m:{version}", EXPERIMENT) is None, status
    finally:
        database.execute("UPDATE model_versions SET status = 'READY' WHERE name = 'm' AND version = ?", (version,))
        database.commit()
        database.close()


def test_a_version_from_outside_the_projects_experiment_or_without_a_run_is_left_to_mlflow(store, tmp_path):
    """Those MLflow's path refuses to load (workspace/provenance.py): never found here, in place."""
    client, uri, _ = store
    elsewhere = register_folder(client, "m", save_regressor(tmp_path / "model-5"), "somewhere-else",
                                artifact_location=(tmp_path / "elsewhere").as_uri())
    assert local_store.find(uri, f"m:{elsewhere.version}", EXPERIMENT) is None
    loose = client.create_model_version("m", source=str(save_regressor(tmp_path / "model-6")))
    assert local_store.find(uri, f"m:{loose.version}", EXPERIMENT) is None
    assert local_store.find(uri, "m@champion", "") is None  # no experiment given: not answered here
