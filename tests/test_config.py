"""Settings from mlops.yml, .mlops/local.yml and MLOPS_* variables: every branch of each precedence, errors that
name the file and the key, and secrets only from the environment (or a 0600 file the local override names)."""
import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from ml_service.config import ConfigError, load_settings
from ml_service.errors import EXIT_USAGE


def write_config(root: Path, text: str) -> None:
    (root / "mlops.yml").write_text(text)


MINIMAL = """
models:
  - {project: p, name: m, task: regression, data: data/p.csv, contract: data/p_suite.json, target: y}
  - {project: q, name: qm, task: classification, experiment: q-exp}
"""
# Every value an MLOPS_* variable may override, set in the file too (so each branch is visible).
FULL = MINIMAL + """
workspace: {state_dir: file-state, tracking_uri: "http://127.0.0.1:7001", artifact_root: file-artifacts}
deploy: {base_image: "file-image:1", registry: file.example.com/ml}
"""
# MLOPS_<NAME> -> (the value in the environment, the Settings attribute, what FULL's file gives without it)
OVERRIDES = {
    "STATE_DIR": ("env-state", "state_dir", "file-state"),
    "TRACKING_URI": ("http://127.0.0.1:7002", "tracking_uri", "http://127.0.0.1:7001"),
    "ARTIFACT_ROOT": ("env-artifacts", "artifact_root", "file-artifacts"),
    "BASE_IMAGE": ("env-image:2", "base_image", "file-image:1"),
    "IMAGE_REGISTRY": ("env.example.com/ml", "image_registry", "file.example.com/ml"),
    "MODEL": ("q", "project", "p"),
    "BUILD_ID": ("42", "build_id", ""),
    "BUILD_URI": ("http://ci.example.com/42", "build_uri", ""),
    "USER": ("dev@example.com", "user", ""),
}


def expected(root: Path, attribute: str, value: str):
    """What a setting holds for value: folders are resolved from the root."""
    return (root / value).resolve() if attribute in ("state_dir", "artifact_root") else value


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


def test_each_project_default_holds_until_the_entry_sets_its_own(tmp_path):
    write_config(tmp_path, """
models:
  - {project: r, name: rm, data: data/other.csv}
  - {project: s, name: sm}
  - {project: t, name: tm, task: classification, dataset: own, experiment: own-exp, score_module: "",
     pipeline: pipes/t.yml, parameters: pipes/t-params.yml, smoke_payload: pipes/t-smoke.json, data: /srv/t.csv}
""")
    (tmp_path / "s" / "scoring").mkdir(parents=True)
    (tmp_path / "s" / "scoring" / "score.py").write_text("")
    (tmp_path / "t" / "scoring").mkdir(parents=True)
    (tmp_path / "t" / "scoring" / "score.py").write_text("")
    r, s, t = load_settings({"MLOPS_ROOT": str(tmp_path)}).models
    assert (r.task, r.dataset, r.experiment, r.score_module) == ("regression", "other", "r", "")
    assert (s.dataset, s.data, s.score_module) == ("s", None, "s.scoring.score")  # a score.py: served through it
    assert (t.task, t.dataset, t.experiment, t.score_module) == ("classification", "own", "own-exp", "")
    assert (t.pipeline_file, t.parameters_file, t.smoke_payload) == (
        tmp_path / "pipes" / "t.yml", tmp_path / "pipes" / "t-params.yml", tmp_path / "pipes" / "t-smoke.json")
    assert (r.pipeline_file, r.smoke_payload) == (tmp_path / "r" / "pipeline.yml",
                                                  tmp_path / "r" / "scoring" / "smoke.json")
    assert t.builtin_params(tmp_path)["data"] == "/srv/t.csv"  # outside the root: kept absolute
    assert r.builtin_params(tmp_path)["data"] == "data/other.csv"


def test_a_model_is_selected_by_project_or_registered_name(tmp_path):
    write_config(tmp_path, MINIMAL)
    chosen = load_settings({"MLOPS_ROOT": str(tmp_path), "MLOPS_MODEL": "q"})
    assert (chosen.project, chosen.model.task, chosen.experiment) == ("q", "classification", "q-exp")
    assert load_settings({"MLOPS_ROOT": str(tmp_path), "MLOPS_MODEL": "qm"}).project == "q"
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


@pytest.mark.parametrize("variable", sorted(OVERRIDES))
def test_each_mlops_variable_overrides_the_file_and_the_file_holds_without_it(tmp_path, variable):
    write_config(tmp_path, FULL)
    value, attribute, from_file = OVERRIDES[variable]
    without = load_settings({"MLOPS_ROOT": str(tmp_path)})
    assert getattr(without, attribute) == expected(tmp_path, attribute, from_file)
    with_env = load_settings({"MLOPS_ROOT": str(tmp_path), f"MLOPS_{variable}": value})
    assert getattr(with_env, attribute) == expected(tmp_path, attribute, value)
    empty = load_settings({"MLOPS_ROOT": str(tmp_path), f"MLOPS_{variable}": ""})  # set but empty: not a value
    assert getattr(empty, attribute) == expected(tmp_path, attribute, from_file)


def test_the_renaming_variables_rename_the_selected_project_and_leave_the_others_their_own(tmp_path):
    """MLOPS_EXPERIMENT and MLOPS_MODEL_NAME are workspace-wide: they must not override the other projects'."""
    write_config(tmp_path, MINIMAL)
    env = {"MLOPS_ROOT": str(tmp_path), "MLOPS_MODEL": "q", "MLOPS_EXPERIMENT": "env-exp", "MLOPS_MODEL_NAME": "env-m"}
    settings = load_settings(env)
    by_project = {m.project: (m.name, m.experiment) for m in settings.models}
    assert by_project == {"p": ("m", "p"), "q": ("env-m", "env-exp")}
    assert (settings.model_name, settings.experiment) == ("env-m", "env-exp")
    plain = load_settings({"MLOPS_ROOT": str(tmp_path), "MLOPS_MODEL": "q"})
    assert {m.project: m.experiment for m in plain.models} == {"p": "p", "q": "q-exp"}  # each project's own


def test_relative_sqlite_uri_is_relative_to_the_root_not_the_cwd(tmp_path, monkeypatch):
    write_config(tmp_path, MINIMAL + "workspace: {tracking_uri: 'sqlite:///store/db.sqlite'}\n")
    monkeypatch.chdir("/")
    settings = load_settings({"MLOPS_ROOT": str(tmp_path)})
    assert settings.tracking_uri == f"sqlite:///{tmp_path}/store/db.sqlite"
    absolute = load_settings({"MLOPS_ROOT": str(tmp_path), "MLOPS_TRACKING_URI": "sqlite:////srv/db.sqlite"})
    assert absolute.tracking_uri == "sqlite:////srv/db.sqlite"


def test_relative_folders_from_the_environment_are_relative_to_the_root_not_the_cwd(tmp_path, monkeypatch):
    write_config(tmp_path, MINIMAL)
    monkeypatch.chdir("/")
    settings = load_settings({"MLOPS_ROOT": str(tmp_path), "MLOPS_STATE_DIR": "ws", "MLOPS_ARTIFACT_ROOT": "arts"})
    assert (settings.state_dir, settings.artifact_root) == (tmp_path / "ws", tmp_path / "arts")
    assert settings.tracking_uri == f"sqlite:///{tmp_path}/ws/mlflow.db"


def write_local(state_dir: Path, text: str) -> Path:
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "local.yml").write_text(text)
    return state_dir / "local.yml"


def test_the_local_override_beats_mlops_yml_and_the_environment_beats_both(tmp_path):
    write_config(tmp_path, FULL)
    state = tmp_path / "file-state"
    assert load_settings({"MLOPS_ROOT": str(tmp_path)}).tracking_uri == "http://127.0.0.1:7001"  # no override
    write_local(state, "tracking_uri: http://127.0.0.1:7003\n")
    assert load_settings({"MLOPS_ROOT": str(tmp_path)}).tracking_uri == "http://127.0.0.1:7003"
    env = {"MLOPS_ROOT": str(tmp_path), "MLOPS_TRACKING_URI": "http://127.0.0.1:7002"}
    assert load_settings(env).tracking_uri == "http://127.0.0.1:7002"


def test_the_local_override_is_read_from_the_state_dir_in_force(tmp_path):
    write_config(tmp_path, MINIMAL)
    write_local(tmp_path / "elsewhere", "tracking_uri: http://127.0.0.1:7004\n")
    assert load_settings({"MLOPS_ROOT": str(tmp_path)}).tracking_uri.startswith("sqlite:///")
    moved = load_settings({"MLOPS_ROOT": str(tmp_path), "MLOPS_STATE_DIR": str(tmp_path / "elsewhere")})
    assert moved.tracking_uri == "http://127.0.0.1:7004"


def secret_file(tmp_path: Path, mode: int = 0o600, value: str = "s3cret-from-file") -> Path:
    path = tmp_path / "password"
    path.write_text(value + "\n")
    path.chmod(mode)
    return path


def test_the_local_user_and_password_file_are_used_for_the_server_the_override_names(tmp_path):
    write_config(tmp_path, MINIMAL)
    secret = secret_file(tmp_path)
    write_local(tmp_path / ".mlops", f"tracking_uri: http://127.0.0.1:7005\nusername: bob\npassword_file: {secret}\n")
    env = {"MLOPS_ROOT": str(tmp_path), "MLFLOW_TRACKING_USERNAME": "env-user", "MLFLOW_TRACKING_PASSWORD": "env-pw"}
    settings = load_settings(env)
    assert (settings.tracking_username, settings.tracking_password) == ("bob", "s3cret-from-file")
    assert "s3cret" not in repr(settings)


def test_settings_read_in_a_pipeline_step_take_the_runs_user_never_the_checkouts_password_file(tmp_path):
    """The runner gives a step MLOPS_RUN_USER and the run's credential: the step's settings use them."""
    write_config(tmp_path, MINIMAL)
    secret = secret_file(tmp_path)
    write_local(tmp_path / ".mlops", f"tracking_uri: http://127.0.0.1:7005\nusername: admin\npassword_file: {secret}\n")
    env = {"MLOPS_ROOT": str(tmp_path), "MLOPS_RUN_USER": "mlops-run-1-ab",
           "MLFLOW_TRACKING_USERNAME": "mlops-run-1-ab", "MLFLOW_TRACKING_PASSWORD": "run-pw"}
    settings = load_settings(env)
    assert (settings.tracking_username, settings.tracking_password) == ("mlops-run-1-ab", "run-pw")


def test_the_local_password_is_never_sent_to_another_server(tmp_path):
    """MLOPS_TRACKING_URI points elsewhere: the override's user and password are not for that server."""
    write_config(tmp_path, MINIMAL)
    secret = secret_file(tmp_path)
    write_local(tmp_path / ".mlops", f"tracking_uri: http://127.0.0.1:7005\nusername: bob\npassword_file: {secret}\n")
    elsewhere = load_settings({"MLOPS_ROOT": str(tmp_path), "MLOPS_TRACKING_URI": "http://127.0.0.1:7006"})
    assert (elsewhere.tracking_username, elsewhere.tracking_password) == ("", "")
    env = {"MLOPS_ROOT": str(tmp_path), "MLOPS_TRACKING_URI": "http://127.0.0.1:7006",
           "MLFLOW_TRACKING_USERNAME": "env-user", "MLFLOW_TRACKING_PASSWORD": "env-pw"}
    assert (load_settings(env).tracking_username, load_settings(env).tracking_password) == ("env-user", "env-pw")


@hypothesis_settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mode=st.integers(0o400, 0o777))
def test_a_password_file_is_accepted_only_when_no_one_but_its_owner_may_touch_it(tmp_path, mode):
    write_config(tmp_path, MINIMAL)
    secret = secret_file(tmp_path, mode)
    write_local(tmp_path / ".mlops", f"tracking_uri: http://127.0.0.1:7005\nusername: bob\npassword_file: {secret}\n")
    if mode & 0o077:
        with pytest.raises(ConfigError, match=re.escape(str(tmp_path / ".mlops" / "local.yml"))) as refused:
            load_settings({"MLOPS_ROOT": str(tmp_path)})
        assert "s3cret" not in str(refused.value)
    else:
        assert load_settings({"MLOPS_ROOT": str(tmp_path)}).tracking_password == "s3cret-from-file"


def test_an_inline_password_in_the_local_override_is_refused_and_not_echoed(tmp_path):
    write_config(tmp_path, MINIMAL)
    write_local(tmp_path / ".mlops", "tracking_uri: http://127.0.0.1:7005\nusername: bob\npassword: inline-s3cret\n")
    with pytest.raises(ConfigError, match="local.yml: password_file") as refused:
        load_settings({"MLOPS_ROOT": str(tmp_path)})
    assert "inline-s3cret" not in str(refused.value)


def test_secrets_come_only_from_the_environment_never_from_mlops_yml_and_have_no_default(tmp_path):
    secrets = {"tracking_username": "file-user", "tracking_password": "file-s3cret", "password": "file-s3cret",
               "username": "file-user"}
    write_config(tmp_path, MINIMAL + f"workspace: {json.dumps(secrets)}\ndeploy: {json.dumps(secrets)}\n")
    settings = load_settings({"MLOPS_ROOT": str(tmp_path)})
    assert (settings.tracking_username, settings.tracking_password) == ("", "")
    env = {"MLOPS_ROOT": str(tmp_path), "MLFLOW_TRACKING_USERNAME": "env-user", "MLFLOW_TRACKING_PASSWORD": "env-pw"}
    assert (load_settings(env).tracking_username, load_settings(env).tracking_password) == ("env-user", "env-pw")
    assert "env-pw" not in repr(load_settings(env))


def test_malformed_yaml_names_the_file(tmp_path):
    write_config(tmp_path, "models: [unclosed\n")
    with pytest.raises(ConfigError, match="mlops.yml: malformed YAML"):
        load_settings({"MLOPS_ROOT": str(tmp_path)})


def test_a_malformed_local_override_names_its_file(tmp_path):
    write_config(tmp_path, MINIMAL)
    write_local(tmp_path / ".mlops", "tracking_uri: [not, closed\n")
    with pytest.raises(ConfigError, match=re.escape(str(tmp_path / ".mlops" / "local.yml"))):
        load_settings({"MLOPS_ROOT": str(tmp_path)})


@pytest.mark.parametrize("text, message", [
    ("models: [{project: p}]\n", r"models\[0\]\.name is required"),
    ("models: [{name: m}]\n", r"models\[0\]\.project is required"),
    ("models: [{project: p, name: m}, {project: q}]\n", r"models\[1\]\.name is required"),
    ("models: [{project: My-Model, name: m}]\n", "must be a Python package name"),
    ("models: [{project: p, name: m, task: ranking}]\n", "'ranking' is not one of regression, classification"),
    ("models: [{project: p, name: m}, {project: p, name: n}]\n", "project p appears more than once"),
    ("models: [{project: p, name: m}, {project: q, name: m}]\n", "name m appears more than once"),
    ("models: [plain]\n", r"models\[0\]: expected a mapping"),
    ("models: {project: p}\n", "'models' must be a list"),
    ("model: {project: p, name: m}\n", "'model:' is now 'models:'"),
    ("[a, b]\n", "expected a mapping at the top level"),
    ("workspace: [a]\nmodels: [{project: p, name: m}]\n", "'workspace' must be a mapping"),
    ("deploy: text\nmodels: [{project: p, name: m}]\n", "'deploy' must be a mapping"),
    ("environments: [qa]\nmodels: [{project: p, name: m}]\n", "'environments' must be a mapping"),
    ("ci: 3\nmodels: [{project: p, name: m}]\n", "'ci' must be a mapping"),
])
def test_bad_entries_are_refused_naming_the_file_and_the_key(tmp_path, text, message):
    write_config(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as refused:
        load_settings({"MLOPS_ROOT": str(tmp_path)})
    assert str(tmp_path / "mlops.yml") in str(refused.value)
    assert refused.value.exit_code == EXIT_USAGE


VALID_PROJECT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # an ASCII Python identifier


@hypothesis_settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(project=st.text(alphabet="abz_09-. A\n/", min_size=1, max_size=8))
def test_a_project_is_accepted_exactly_when_it_is_a_python_package_name(tmp_path, project):
    write_config(tmp_path, f"models: [{{project: {json.dumps(project)}, name: m}}]\n")
    if VALID_PROJECT.fullmatch(project):
        assert load_settings({"MLOPS_ROOT": str(tmp_path)}).project == project
    else:
        with pytest.raises(ConfigError, match="must be a Python package name"):
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


def test_settings_pickle_for_worker_processes_and_stay_read_only(tmp_path):
    """A spawned batch recorder gets the settings pickled; the parsed sections must survive it unchanged."""
    import pickle

    write_config(tmp_path, MINIMAL + "environments:\n  production:\n    approval: {approvers: [a@example.com]}\n"
                 "    values: {route: {enabled: true}}\nci: {variable_groups: {g: {variables: {A: 1}}}}\n")
    settings = load_settings({"MLOPS_ROOT": str(tmp_path)})
    copied = pickle.loads(pickle.dumps(settings))
    assert copied == settings and copied.environments["production"].approval.approvers == ("a@example.com",)
    with pytest.raises(TypeError):
        settings.environments["production"].values["route"]["enabled"] = False


@pytest.mark.parametrize("text, read, value", [
    ("ci: {keep_work: 0}", lambda s: s.ci.keep_work, 0),            # keep no work folder: allowed
    ("ci: {keep_work: -1}", None, "ci.keep_work"),
    ("ci: {log_max_mb: 0.5}", lambda s: s.ci.log_max_mb, 0.5),
    ("ci: {log_max_mb: 0}", None, "ci.log_max_mb"),
    ("studio: {login_max_failures: 1}", lambda s: s.studio.login_max_failures, 1),
    ("studio: {login_max_failures: 0}", None, "studio.login_max_failures"),
    ("studio: {login_window_minutes: 1}", lambda s: s.studio.login_window_minutes, 1),
    ("studio: {login_window_minutes: 0}", None, "studio.login_window_minutes"),
])
def test_each_numeric_setting_takes_its_lowest_value_and_refuses_one_below(tmp_path, text, read, value):
    """Both sides of the lower bound of ci.keep_work (0), ci.log_max_mb (above 0) and the studio's login limits (1)
    (sections.py): the lowest allowed value is read as written, one below is refused naming the file and key."""
    write_config(tmp_path, f"{text}\nmodels: [{{project: p, name: m}}]\n")
    if read is not None:
        assert read(load_settings({"MLOPS_ROOT": str(tmp_path)})) == value
    else:
        with pytest.raises(ConfigError) as refused:
            load_settings({"MLOPS_ROOT": str(tmp_path)})
        assert f"{tmp_path / 'mlops.yml'}: {value}:" in str(refused.value)
