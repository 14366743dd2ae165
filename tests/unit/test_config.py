from pathlib import Path

import pytest

from ml_service.config import ConfigError, load_settings


def write_config(root: Path, text: str) -> None:
    (root / "mlops.yml").write_text(text)


MINIMAL = """
model: {name: m, project: p, pipeline: p/pipeline.yml, parameters: p/parameters.yml}
"""


def test_defaults_put_everything_under_state_dir(tmp_path):
    write_config(tmp_path, MINIMAL)
    settings = load_settings({"MLOPS_ROOT": str(tmp_path)})
    assert settings.state_dir == tmp_path / ".mlops"
    assert settings.tracking_uri == f"sqlite:///{tmp_path}/.mlops/mlflow.db"
    assert settings.artifact_root == tmp_path / ".mlops" / "artifacts"
    assert settings.pipeline_file == tmp_path / "p" / "pipeline.yml"


def test_environment_overrides_the_file(tmp_path):
    write_config(tmp_path, MINIMAL + "workspace: {experiment: from-file}\n")
    settings = load_settings({"MLOPS_ROOT": str(tmp_path), "MLOPS_EXPERIMENT": "from-env",
                              "MLOPS_TRACKING_URI": "http://127.0.0.1:5000", "MLOPS_BUILD_ID": "42"})
    assert settings.experiment == "from-env"
    assert settings.tracking_uri == "http://127.0.0.1:5000"
    assert settings.build_id == "42"


def test_relative_sqlite_uri_is_relative_to_the_root_not_the_cwd(tmp_path, monkeypatch):
    write_config(tmp_path, MINIMAL + "workspace: {tracking_uri: 'sqlite:///store/db.sqlite'}\n")
    monkeypatch.chdir("/")
    settings = load_settings({"MLOPS_ROOT": str(tmp_path)})
    assert settings.tracking_uri == f"sqlite:///{tmp_path}/store/db.sqlite"


def test_malformed_yaml_names_the_file(tmp_path):
    write_config(tmp_path, "model: [unclosed\n")
    with pytest.raises(ConfigError, match="mlops.yml: malformed YAML"):
        load_settings({"MLOPS_ROOT": str(tmp_path)})


def test_missing_model_name_is_refused(tmp_path):
    write_config(tmp_path, "model: {project: p, pipeline: x.yml, parameters: y.yml}\n")
    with pytest.raises(ConfigError, match="model.name is required"):
        load_settings({"MLOPS_ROOT": str(tmp_path)})


def test_missing_config_file_says_how_to_fix(tmp_path):
    with pytest.raises(ConfigError, match="MLOPS_ROOT"):
        load_settings({"MLOPS_ROOT": str(tmp_path)})


def test_the_repository_config_loads():
    settings = load_settings({})
    assert settings.model_name == "diabetes_regression_model"
    assert settings.pipeline_file.is_file() and settings.parameters_file.is_file()
