"""Batch scoring finds a model version in the embedded workspace's sqlite store without MLflow (through the run
store's fast path), and answers exactly what MLflow answers there, or None (then MLflow is asked): also None for a
version that cannot be traced to a run of the project's experiment (then MLflow's path refuses it,
workspace/provenance.py), and None for any store the fast path does not know."""
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from ml_service.batch import BatchError, local_store
from ml_service.config import ModelProject, Settings
from tests.conftest import ROOT
from tests.support.registered import register_folder
from tests.support.rows_score import save_regressor

EXPERIMENT = "batch_project"


def register(client, folder: Path, model_folder: Path) -> Path:
    """Register model_folder from a run of EXPERIMENT; the run's copy of it (what MLflow names as the source)."""
    version = register_folder(client, "m", model_folder, EXPERIMENT, artifact_location=(folder / "artifacts").as_uri())
    return Path(unquote(urlparse(version.source).path))


def settings_of(uri: str, experiment: str = EXPERIMENT) -> Settings:
    """Settings of a workspace whose tracking URI is uri and whose project's experiment is experiment."""
    folder = Path(uri[len("sqlite:///"):]).parent if uri.startswith("sqlite:///") else Path("/nonexistent")
    return Settings(root=folder, state_dir=folder, tracking_uri=uri, artifact_root=folder,
                    models=(ModelProject("batch_project", "m", folder, experiment=experiment),))


def find(uri: str, ref: str, experiment: str = EXPERIMENT):
    """local_store.find in a workspace of tracking URI uri."""
    return local_store.find(settings_of(uri, experiment), ref)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A real MLflow sqlite store (created as every command creates it) with two versions of model 'm'
    (champion: 1)."""
    from ml_service.workspace.tracking import connect

    folder = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{folder}/mlflow.db"
    client = connect(settings_of(uri))
    logged = {n: register(client, folder, save_regressor(folder / f"model-{n}")) for n in (1, 2)}
    client.set_registered_model_alias("m", "champion", "1")
    return client, uri, logged


def test_an_alias_or_a_version_is_the_model_folder_mlflow_names(store):
    client, uri, logged = store
    assert find(uri, "m@champion") == ("m", "1", logged[1])
    assert find(uri, "models:/m:2") == ("m", "2", logged[2])
    client.set_registered_model_alias("m", "champion", "2")  # read live, never cached
    assert find(uri, "m@champion") == ("m", "2", logged[2])
    assert Path(unquote(urlparse(client.get_model_version_by_alias("m", "champion").source).path)) == logged[2]
    client.set_registered_model_alias("m", "champion", "1")


@pytest.mark.parametrize("ref", ["m@nope", "m:7", "other@champion", "m:x"])
def test_what_is_not_found_is_left_to_mlflow(store, ref):
    assert find(store[1], ref) is None


def test_a_deleted_version_is_not_found(store, tmp_path):
    client, uri, _ = store
    register(client, tmp_path, save_regressor(tmp_path / "model-3"))
    assert find(uri, "m:3") is not None
    client.delete_model_version("m", "3")
    assert find(uri, "m:3") is None


def test_other_stores_are_left_to_mlflow(store, tmp_path):
    assert find("http://127.0.0.1:5000", "m@champion") is None
    assert find(f"sqlite:///{tmp_path}/none.db", "m@champion") is None
    (tmp_path / "junk.db").write_bytes(b"not a database")
    (tmp_path / "junk.db.ready").write_text("")
    assert find(f"sqlite:///{tmp_path}/junk.db", "m@champion") is None
    with pytest.raises(BatchError, match="NAME@ALIAS or NAME:VERSION"):
        find(store[1], "m", EXPERIMENT)


def test_finding_a_model_does_not_import_mlflow(store):
    code = ("import sys; from pathlib import Path; from ml_service.batch import local_store; "
            "from ml_service.config import ModelProject, Settings; "
            f"folder = Path({store[1][len('sqlite:///'):]!r}).parent; "
            f"settings = Settings(folder, folder, {store[1]!r}, folder, "
            f"(ModelProject('batch_project', 'm', folder, experiment={EXPERIMENT!r}),)); "
            "print(local_store.find(settings, 'm@champion')[1], 'mlflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.split() == ["1", "False"]


def test_a_version_not_ready_is_left_to_mlflow(store, tmp_path):
    """A version whose registration has not finished (or failed) has no model to load yet."""
    import sqlite3

    client, uri, _ = store
    logged = register(client, tmp_path, save_regressor(tmp_path / "model-4"))
    version = client.search_model_versions("name = 'm'", order_by=["version_number DESC"])[0].version
    assert find(uri, f"m:{version}") == ("m", str(version), logged)
    database = sqlite3.connect(uri[len("sqlite:///"):])
    try:
        for status in ("PENDING_REGISTRATION", "FAILED_REGISTRATION"):
            database.execute("UPDATE model_versions SET status = ? WHERE name = 'm' AND version = ?",
                             (status, version))
            database.commit()
            assert find(uri, f"m:{version}") is None, status
    finally:
        database.execute("UPDATE model_versions SET status = 'READY' WHERE name = 'm' AND version = ?", (version,))
        database.commit()
        database.close()


def test_a_version_from_outside_the_projects_experiment_or_without_a_run_is_left_to_mlflow(store, tmp_path):
    """Those MLflow's path refuses to load (workspace/provenance.py): never found here, in place."""
    client, uri, _ = store
    elsewhere = register_folder(client, "m", save_regressor(tmp_path / "model-5"), "somewhere-else",
                                artifact_location=(tmp_path / "elsewhere").as_uri())
    assert find(uri, f"m:{elsewhere.version}") is None
    loose = client.create_model_version("m", source=str(save_regressor(tmp_path / "model-6")))
    assert find(uri, f"m:{loose.version}") is None
    assert find(uri, "m@champion", "") is None  # no experiment given: not answered here
