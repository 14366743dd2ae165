from pathlib import Path

import pytest

from ml_service.config import ConfigError, load_settings


def write_config(root: Path, text: str) -> None:
    (root / "mlops.yml").write_text(text)


MINIMAL = """
models:
  - {project: p, name: m, task: regression, data: data/p.csv, contract: data/p_suite.json, target: y}
  - {project: q, name: qm, task: classification, experiment: q-exp}
"""


def test_defaults_put_everything_under_state_dir(tmp_path):
    write_config(tmp_path, MINIMAL)
    settings = load_settings({"MLOPS_ROOT": str(tmp_path)})
    assert settings.state_dir == tmp_path / ".mlops"
    assert settings.tracking_uri == f"sqlite:///{tmp_path}/.mlops/mlflow.db"
    assert settings.artifact_root == tmp_path / ".mlops" / "artifacts"


def test_the_first_model_is_the_default_and_paths_follow_the_project(tmp_path):
    write_config(tmp_path, MINIMAL)
    settings = load_settings({"MLOPS_ROOT": str(tmp_path)})
    assert (settings.project, settings.model_name, settings.experiment) == ("p", "m", "p")
    assert settings.pipeline_file == tmp_path / "p" / "pipeline.yml"
    assert settings.parameters_file == tmp_path / "p" / "parameters.yml"
    assert settings.model.builtin_params(tmp_path) == {"data": "data/p.csv", "contract": "data/p_suite.json",
                                                       "target": "y", "dataset": "p"}
    assert settings.model.score_module == ""  # no p/scoring/score.py: served as an MLflow pyfunc


def test_a_model_is_selected_by_project_or_registered_name(tmp_path):
    write_config(tmp_path, MINIMAL)
    chosen = load_settings({"MLOPS_ROOT": str(tmp_path), "MLOPS_MODEL": "q"})
    assert (chosen.project, chosen.model.task, chosen.experiment) == ("q", "classification", "q-exp")
    settings = load_settings({"MLOPS_ROOT": str(tmp_path)})
    assert settings.select("qm").project == "q" and settings.for_registered("qm").project == "q"
    assert settings.for_registered("unknown").project == "p"
    with pytest.raises(ConfigError, match="no model project 'nope'.*known: p, q"):
        load_settings({"MLOPS_ROOT": str(tmp_path), "MLOPS_MODEL": "nope"})


def test_environment_overrides_the_file_for_the_selected_model_only(tmp_path):
    write_config(tmp_path, MINIMAL)
    settings = load_settings({"MLOPS_ROOT": str(tmp_path), "MLOPS_EXPERIMENT": "from-env",
                              "MLOPS_MODEL_NAME": "renamed", "MLOPS_TRACKING_URI": "http://127.0.0.1:5000",
                              "MLOPS_BUILD_ID": "42"})
    assert (settings.experiment, settings.model_name) == ("from-env", "renamed")
    assert settings.select("q").model_name == "qm"
    assert settings.tracking_uri == "http://127.0.0.1:5000"
    assert settings.build_id == "42"


def test_relative_sqlite_uri_is_relative_to_the_root_not_the_cwd(tmp_path, monkeypatch):
    write_config(tmp_path, MINIMAL + "workspace: {tracking_uri: 'sqlite:///store/db.sqlite'}\n")
    monkeypatch.chdir("/")
    settings = load_settings({"MLOPS_ROOT": str(tmp_path)})
    assert settings.tracking_uri == f"sqlite:///{tmp_path}/store/db.sqlite"


def test_malformed_yaml_names_the_file(tmp_path):
    write_config(tmp_path, "models: [unclosed\n")
    with pytest.raises(ConfigError, match="mlops.yml: malformed YAML"):
        load_settings({"MLOPS_ROOT": str(tmp_path)})


@pytest.mark.parametrize("text, message", [
    ("models: [{project: p}]\n", r"models\[0\]\.name is required"),
    ("models: [{name: m}]\n", r"models\[0\]\.project is required"),
    ("models: [{project: My-Model, name: m}]\n", "must be a Python package name"),
    ("models: [{project: p, name: m, task: ranking}]\n", "'ranking' is not one of regression, classification"),
    ("models: [{project: p, name: m}, {project: p, name: n}]\n", "project p appears more than once"),
    ("models: {project: p}\n", "'models' must be a list"),
    ("model: {project: p, name: m}\n", "'model:' is now 'models:'"),
])
def test_bad_model_entries_are_refused_naming_the_entry(tmp_path, text, message):
    write_config(tmp_path, text)
    with pytest.raises(ConfigError, match=message):
        load_settings({"MLOPS_ROOT": str(tmp_path)})


def test_no_models_is_fine_until_a_model_is_needed(tmp_path):
    write_config(tmp_path, "workspace: {}\n")
    settings = load_settings({"MLOPS_ROOT": str(tmp_path)})
    with pytest.raises(ConfigError, match="mlops init"):
        settings.model


def test_missing_config_file_says_how_to_fix(tmp_path):
    with pytest.raises(ConfigError, match="MLOPS_ROOT"):
        load_settings({"MLOPS_ROOT": str(tmp_path)})


def test_the_repository_config_loads_every_project():
    settings = load_settings({})
    assert len(settings.models) >= 2
    for model in settings.models:
        assert model.pipeline_file.is_file() and model.parameters_file.is_file(), model.project
        assert model.data.is_file() and model.contract.is_file(), model.project
