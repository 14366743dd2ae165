"""A fresh embedded store is a copy of an empty store MLflow migrated once (workspace/store_template.py).

HOME points at a temp folder, so the template is this test's own. Real MLflow sqlite stores.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, workspace_env

pytestmark = pytest.mark.integration


def test_the_second_fresh_workspace_copies_the_first_ones_empty_store_and_works(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for key in ("MLOPS_TRACKING_URI", "MLOPS_ARTIFACT_ROOT", "MLOPS_MODEL", "MLOPS_MODEL_NAME", "MLOPS_EXPERIMENT"):
        monkeypatch.delenv(key, raising=False)
    from ml_service.workspace.store_template import template_path

    def fresh(name: str):
        env = {**os.environ, **workspace_env(tmp_path / name)}
        result = subprocess.run([sys.executable, "-m", "ml_service.cli", "model", "list"], cwd=ROOT, env=env,
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return tmp_path / name

    first = fresh("first")
    assert (first / "mlflow.db.ready").read_text().strip() == "created by MLflow"
    assert template_path().is_file()
    before = int(time.time() * 1000)
    second = fresh("second")
    after = int(time.time() * 1000)
    assert (second / "mlflow.db.ready").read_text().strip() == "copied from the empty store template"

    import mlflow

    uri = f"sqlite:///{second / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert client.get_experiment("0").artifact_location == os.path.abspath("mlruns") + "/0"
    default = client.get_experiment("0")  # made now, in milliseconds, as MLflow would have made it
    assert before <= default.creation_time == default.last_update_time <= after, (before, default, after)
    experiment = client.create_experiment("copied", artifact_location=(second / "artifacts").as_uri())
    run = client.create_run(experiment)
    client.log_metric(run.info.run_id, "m", 1.0)
    client.create_registered_model("copied-model")
    client.create_model_version("copied-model", source=(second / "artifacts").as_uri(), run_id=run.info.run_id)
    client.set_registered_model_alias("copied-model", "champion", "1")
    assert str(client.get_model_version_by_alias("copied-model", "champion").version) == "1"
    assert client.get_run(run.info.run_id).data.metrics == {"m": 1.0}
    first_client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{first / 'mlflow.db'}")
    assert first_client.get_experiment_by_name("copied") is None  # a copy, not a shared file


def test_a_saved_template_is_never_replaced_and_an_unusable_one_is_never_copied(tmp_path, monkeypatch):
    import sqlite3

    from ml_service.workspace import store_template
    from tests.conftest import fresh_store

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    empty = tmp_path / "empty.db"
    fresh_store(empty)
    store_template.save_template(empty)
    template = store_template.template_path()
    saved = template.read_bytes()
    used = tmp_path / "used.db"
    fresh_store(used)
    with sqlite3.connect(used) as db:
        db.execute("INSERT INTO experiments (name, artifact_location, lifecycle_stage) VALUES ('x', 'y', 'active')")
    store_template.save_template(used)  # a store already written to is never the template
    assert template.read_bytes() == saved

    copy = tmp_path / "ws" / "mlflow.db"
    copy.parent.mkdir()
    assert store_template.copy_template(copy) is True
    with sqlite3.connect(copy) as db:
        assert db.execute("SELECT artifact_location FROM experiments WHERE experiment_id = 0").fetchone() == \
            (str(tmp_path / "mlruns" / "0"),)
        assert db.execute("SELECT count(*) FROM experiments").fetchone() == (1,)

    with sqlite3.connect(template) as db:
        db.execute("DELETE FROM alembic_version")  # a template without a schema revision
    other = tmp_path / "other" / "mlflow.db"
    other.parent.mkdir()
    assert store_template.copy_template(other) is False
    assert list(other.parent.iterdir()) == []  # nothing left behind, not even the partial copy
