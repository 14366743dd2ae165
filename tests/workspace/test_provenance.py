"""Issue 24, finding 1 in the embedded workspace (a real MLflow sqlite store): a registered version is loaded
(unpickled) only when its source run is a run of the project's experiment and its files are that run's. The
evaluate step (promotion.py) and every command that downloads a version (deploy/image.py: serve, build, batch)
refuse the others by name, before any pickle runs. The team-server side is tests/team/test_trust.py's."""
from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from ml_service.deploy.image import download_model
from ml_service.workspace import promotion, tracking
from ml_service.workspace.provenance import UntrustedModelError

pytestmark = pytest.mark.integration


class Payload:
    """A pickle that writes a marker file when loaded."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


def unpickle(model_dir: Path) -> float:
    pickle.loads((model_dir / "model.pkl").read_bytes())
    return 1.0


def registered(client, settings, tmp_path: Path, name: str, experiment: str, content, source_run=None):
    """A version of name whose files (model.pkl holding content) were logged to a run of experiment; its source
    run is that run, or source_run."""
    folder = tmp_path / f"{name}-files"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(pickle.dumps(content))
    experiment_id = tracking.ensure_experiment(client, settings, experiment)
    run = client.create_run(experiment_id)
    client.log_artifacts(run.info.run_id, str(folder), "model")
    client.create_registered_model(name)
    version = client.create_model_version(name, f"{run.info.artifact_uri}/model",
                                          run_id=source_run or run.info.run_id)
    client.set_registered_model_alias(name, "champion", version.version)
    return run.info.run_id, version


def context(settings, name: str) -> dict:
    return {"tracking_uri": settings.tracking_uri, "model_name": name, "experiment_name": settings.experiment,
            "state_dir": str(settings.state_dir)}


def test_a_champion_of_the_projects_experiment_is_loaded(workspace, tmp_path):
    client = tracking.connect(workspace)
    registered(client, workspace, tmp_path, "good_model", workspace.experiment, {"weights": [1]})
    assert promotion.rescore_champion(context(workspace, "good_model"), "1", unpickle) == 1.0


def test_a_champion_trained_in_another_experiment_is_refused_before_it_is_unpickled(workspace, tmp_path):
    client = tracking.connect(workspace)
    marker = tmp_path / "ran"
    registered(client, workspace, tmp_path, "planted_model", "somewhere-else", Payload(marker))
    with pytest.raises(UntrustedModelError) as refused:
        promotion.rescore_champion(context(workspace, "planted_model"), "1", unpickle)
    assert not marker.exists()
    assert "planted_model version 1" in str(refused.value) and "somewhere-else" not in str(refused.value)
    version = client.get_model_version("planted_model", "1")
    with pytest.raises(UntrustedModelError):  # serve, build, batch: the same check before the download
        download_model(version, tmp_path / "download")
    assert not (tmp_path / "download").exists() and not marker.exists()


def test_a_version_naming_a_project_run_but_holding_other_files_is_refused(workspace, tmp_path):
    client = tracking.connect(workspace)
    marker = tmp_path / "ran"
    honest = client.create_run(tracking.ensure_experiment(client, workspace)).info.run_id
    registered(client, workspace, tmp_path, "borrowed_model", "somewhere-else", Payload(marker), source_run=honest)
    with pytest.raises(UntrustedModelError) as refused:
        promotion.rescore_champion(context(workspace, "borrowed_model"), "1", unpickle)
    assert "not those of its source run" in str(refused.value) and not marker.exists()


def test_a_version_without_a_source_run_is_refused(workspace, tmp_path):
    client = tracking.connect(workspace)
    marker = tmp_path / "ran"
    folder = tmp_path / "loose"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(pickle.dumps(Payload(marker)))
    client.create_registered_model("loose_model")
    client.create_model_version("loose_model", folder.as_uri())
    with pytest.raises(UntrustedModelError) as refused:
        promotion.rescore_champion(context(workspace, "loose_model"), "1", unpickle)
    assert "names no source run" in str(refused.value) and not marker.exists()


def test_a_copy_of_a_traced_version_is_loaded(workspace, tmp_path):
    """MLflow's copy of a version (source models:/NAME/VERSION) is traced through the version it copies."""
    import mlflow

    client = tracking.connect(workspace)
    run_id, _ = registered(client, workspace, tmp_path, "original_model", workspace.experiment, {"weights": [1]})
    copy = mlflow.register_model("models:/original_model/1", "copied_model", tags={"run_id": run_id})
    client.set_registered_model_alias("copied_model", "champion", copy.version)
    assert promotion.rescore_champion(context(workspace, "copied_model"), str(copy.version), unpickle) == 1.0


def copies(client, name: str, run_id: str | None, count: int) -> list:
    """count copies of name, each of the version before it (models:/NAME/VERSION), naming run_id or no run."""
    made = []
    for _ in range(count):
        latest = max(int(v.version) for v in client.search_model_versions(f"name='{name}'"))
        made.append(client.create_model_version(name, f"models:/{name}/{latest}", run_id=run_id))
    return made


@pytest.mark.parametrize("names_the_run", [True, False], ids=["copies-naming-the-run", "copies-naming-no-run"])
def test_a_chain_of_five_copies_is_traced_and_a_sixth_copy_is_refused(workspace, tmp_path, names_the_run):
    """The depth cap on copies of copies (provenance.py), on both sides: the fifth copy in a row is traced to the
    original's run, the sixth is refused (whether the copies keep the run, as MLflow's copy does, or name none)."""
    from ml_service.workspace import provenance

    client = tracking.connect(workspace)
    run_id, _ = registered(client, workspace, tmp_path, "chained_model", workspace.experiment, {"weights": [1]})
    chain = copies(client, "chained_model", run_id if names_the_run else None, 6)
    assert [str(v.version) for v in chain] == ["2", "3", "4", "5", "6", "7"]
    for version in chain[:5]:
        provenance.check(client, client.get_model_version("chained_model", version.version), workspace.experiment)
    with pytest.raises(UntrustedModelError):
        provenance.check(client, client.get_model_version("chained_model", "7"), workspace.experiment)


@pytest.mark.parametrize("names_the_run", [True, False], ids=["copies-naming-the-run", "copies-naming-no-run"])
def test_two_versions_copying_each_other_are_refused_not_followed_forever(workspace, tmp_path, names_the_run):
    """A cycle of copies (version 2 names 3 and 3 names 2; MLflow refuses to create one, a store written by hand
    holds it) is refused after the depth cap (provenance.py), a handful of reads: without the cap the check recursed
    until Python's recursion limit, whose error a store read turns into a refusal after ~1000 reads."""
    import sqlite3

    from ml_service.workspace import provenance

    client = tracking.connect(workspace)
    run_id, _ = registered(client, workspace, tmp_path, "cycled_model", workspace.experiment, {"weights": [1]})
    copies(client, "cycled_model", run_id if names_the_run else None, 2)
    with sqlite3.connect(workspace.tracking_uri[len("sqlite:///"):]) as db:
        db.execute("update model_versions set source = 'models:/cycled_model/3' "
                   "where name = 'cycled_model' and version = 2")
    assert client.get_model_version("cycled_model", "2").source == "models:/cycled_model/3"
    for version in ("2", "3"):
        counted = CountedReads(client)
        with pytest.raises(UntrustedModelError):
            provenance.check(counted, client.get_model_version("cycled_model", version), workspace.experiment)
        assert 5 <= counted.reads <= 10  # the cap is 5 copies deep


class CountedReads:
    """The real MLflow client, counting the model versions read through it."""

    def __init__(self, client):
        self.client, self.reads = client, 0

    def get_model_version(self, *args, **kwargs):
        self.reads += 1
        return self.client.get_model_version(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.client, name)
