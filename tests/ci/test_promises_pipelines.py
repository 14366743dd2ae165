"""The `make run` chain through its completion triggers, with the real pipeline files and templates and the
real local engine (issue 19): build -> retrain -> release when a version was registered; the retrain publishes
the `model` artifact only then (or when QA lost the champion), and the release deploys the version it names.

`mlops` and the Makefile are the recording stand-ins of tests/ci/test_local.py (named fakes: they
record each call and answer as the real commands would), so the chain's wiring is what is under test.
"""
from __future__ import annotations

import pytest

from ml_service.ci import service
from ml_service.config import load_settings
from tests.ci.test_local import model_repo

pytestmark = pytest.mark.integration


@pytest.fixture
def chain(tmp_path, monkeypatch):
    (tmp_path / "mlops.yml").write_text("models:\n  - {project: alpha, name: alpha_model}\n"
                                        "  - {project: beta, name: beta_model}\n")
    monkeypatch.setenv("MLOPS_ROOT", str(tmp_path))
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MLOPS_USER", "dev@example.com")
    monkeypatch.delenv("MLOPS_MODEL", raising=False)
    project = load_settings()
    work = tmp_path / "work"
    work.mkdir()
    model_repo(work)
    project.state_dir.mkdir(parents=True, exist_ok=True)
    return project, work


def run_chain(settings, work, pipeline: str):
    store = service.open_store(settings)
    first = service.queue(settings, store, work / ".pipelines" / f"{pipeline}.yml", "Manual", {}, work, "main", "c1")
    ran = service.execute(settings, store, first, chain=True)
    return store, {store.get_run(r).pipeline: store.get_run(r) for r in ran}


def calls(settings) -> list[str]:
    return (settings.state_dir / "calls.log").read_text().splitlines()


def test_a_registered_version_flows_from_build_through_retrain_to_release(chain):
    settings, work = chain
    (settings.state_dir / "register-alpha").write_text("")
    store, runs = run_chain(settings, work, "alpha-build")
    assert sorted(runs) == ["alpha-build", "alpha-release", "alpha-retrain"]
    assert all(r.result == "succeeded" for r in runs.values()), {n: r.result for n, r in runs.items()}
    assert runs["alpha-retrain"].resources["build"]["runID"] == runs["alpha-build"].id
    assert runs["alpha-release"].resources["retrain"]["runID"] == runs["alpha-retrain"].id
    artifact = store.artifacts_dir(runs["alpha-retrain"].id) / "model" / "model.json"
    assert '"version": "1"' in artifact.read_text()
    for call in ("image build --model alpha_model:1", "deploy qa --model alpha_model:1", "smoke-test qa",
                 "deploy prod --model alpha_model:1"):  # no approvals configured here: through production
        assert f"alpha: mlops {call}" in calls(settings), call


def test_retrain_publishes_model_only_when_a_version_was_registered(chain):
    settings, work = chain  # nothing registered, QA serves the champion
    store, runs = run_chain(settings, work, "alpha-retrain")
    retrain = runs["alpha-retrain"]
    assert sorted(runs) == ["alpha-retrain"] and retrain.result == "succeeded"
    assert not (store.artifacts_dir(retrain.id) / "model").exists()
    records = {r["display"]: r["result"] for r in store.records(retrain.id)}
    assert records["Publish the model artifact"] == "Skipped"
    assert not [line for line in calls(settings) if "deploy qa" in line or "image build" in line]

    (settings.state_dir / "register-alpha").write_text("")
    store, runs = run_chain(settings, work, "alpha-retrain")
    assert sorted(runs) == ["alpha-release", "alpha-retrain"]
    assert (store.artifacts_dir(runs["alpha-retrain"].id) / "model" / "model.json").is_file()
