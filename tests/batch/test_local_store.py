"""Batch scoring finds a model version in the embedded workspace's sqlite store without MLflow, and answers
exactly what MLflow answers there, or None (then MLflow is asked)."""
import subprocess
import sys

import pytest

from ml_service.batch import BatchError, local_store
from tests.conftest import ROOT
from tests.support.rows_score import save_regressor


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A real MLflow sqlite store with two versions of model 'm' (champion: 1)."""
    import mlflow

    folder = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{folder}/mlflow.db"
    client = mlflow.MlflowClient(uri, uri)
    client.create_registered_model("m")
    for n in (1, 2):
        client.create_model_version("m", source=str(save_regressor(folder / f"model-{n}")))
    client.set_registered_model_alias("m", "champion", "1")
    return client, uri, folder


def test_an_alias_or_a_version_is_the_model_folder_mlflow_names(store):
    client, uri, folder = store
    assert local_store.find(uri, "m@champion") == ("m", "1", folder / "model-1")
    assert local_store.find(uri, "models:/m:2") == ("m", "2", folder / "model-2")
    client.set_registered_model_alias("m", "champion", "2")  # read live, never cached
    assert local_store.find(uri, "m@champion") == ("m", "2", folder / "model-2")
    assert client.get_model_version_by_alias("m", "champion").source == str(folder / "model-2")
    client.set_registered_model_alias("m", "champion", "1")


@pytest.mark.parametrize("ref", ["m@nope", "m:7", "other@champion", "m:x"])
def test_what_is_not_found_is_left_to_mlflow(store, ref):
    assert local_store.find(store[1], ref) is None


def test_a_deleted_version_is_not_found(store, tmp_path):
    client, uri, folder = store
    client.create_model_version("m", source=str(save_regressor(tmp_path / "model-3")))
    assert local_store.find(uri, "m:3") is not None
    client.delete_model_version("m", "3")
    assert local_store.find(uri, "m:3") is None


def test_other_stores_are_left_to_mlflow(store, tmp_path):
    assert local_store.find("http://127.0.0.1:5000", "m@champion") is None
    assert local_store.find(f"sqlite:///{tmp_path}/none.db", "m@champion") is None
    (tmp_path / "junk.db").write_bytes(b"not a database")
    assert local_store.find(f"sqlite:///{tmp_path}/junk.db", "m@champion") is None
    with pytest.raises(BatchError, match="NAME@ALIAS or NAME:VERSION"):
        local_store.find(store[1], "m")


def test_finding_a_model_does_not_import_mlflow(store):
    code = ("import sys; from ml_service.batch import local_store; "
            f"print(local_store.find({store[1]!r}, 'm@champion')[1], 'mlflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.split() == ["1", "False"]


def test_a_version_not_ready_is_left_to_mlflow(store, tmp_path):
    """A version whose registration has not finished (or failed) has no model to load yet."""
    import sqlite3

    client, uri, folder = store
    client.create_model_version("m", source=str(save_regressor(tmp_path / "model-4")))
    version = client.search_model_versions("name = 'm'", order_by=["version_number DESC"])[0].version
    assert local_store.find(uri, f"m:{version}") == ("m", str(version), tmp_path / "model-4")
    database = sqlite3.connect(uri[len("sqlite:///"):])
    try:
        for status in ("PENDING_REGISTRATION", "FAILED_REGISTRATION"):
            database.execute("UPDATE model_versions SET status = ? WHERE name = 'm' AND version = ?",
                             (status, version))
            database.commit()
            assert local_store.find(uri, f"m:{version}") is None, status
    finally:
        database.execute("UPDATE model_versions SET status = 'READY' WHERE name = 'm' AND version = ?", (version,))
        database.commit()
        database.close()
