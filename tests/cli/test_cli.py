"""The `mlops` command: which project it acts on (--project over MLOPS_MODEL over the first), error classes to
exit codes (one line; a traceback only with MLOPS_DEBUG=1), the options every command shares, start-up cost.

In-process `main([...])` where it can be (fast, and what a mutation tester sees); a subprocess of the working
tree (`sys.executable -m ml_service.cli`, cwd at the tree under test) only where the process is the subject."""
import argparse
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st

from ml_service.cli import build_parser, main
from ml_service.cli.support import command_settings, registered_name
from ml_service.errors import EXIT_FAILED, EXIT_USAGE, MLOpsError, UsageError
from tests.conftest import ROOT

CONFIG = """
models:
  - {project: p, name: m, task: regression}
  - {project: q, name: qm, task: classification}
"""


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A repository with two model projects; no inherited MLOPS_* selection (restored after the test, since the
    command writes MLOPS_MODEL for its steps)."""
    (tmp_path / "mlops.yml").write_text(CONFIG)
    for key in [k for k in os.environ if k.startswith("MLOPS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("MLOPS_MODEL", "")  # recorded, so that the value the command writes is undone
    monkeypatch.delenv("MLOPS_MODEL")
    monkeypatch.setenv("MLOPS_ROOT", str(tmp_path))
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    return tmp_path


def selected(capsys, *argv: str) -> str:
    """The project `mlops ... model projects --default` acts on."""
    capsys.readouterr()
    assert main([*argv, "model", "projects", "--default"]) == 0
    return capsys.readouterr().out.strip()


def test_the_first_project_is_the_default(repo, capsys):
    assert selected(capsys) == "p"


@pytest.mark.parametrize("given_value, kept", [(None, "true"), ("false", "false")])
def test_mlflow_telemetry_is_off_unless_the_user_says_otherwise(repo, capsys, monkeypatch, given_value, kept):
    if given_value is None:
        monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "x")
        monkeypatch.delenv("MLFLOW_DISABLE_TELEMETRY")
    else:
        monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", given_value)
    selected(capsys)
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == kept  # what MLflow and every step process read


def test_mlops_model_beats_the_first_project(repo, capsys, monkeypatch):
    monkeypatch.setenv("MLOPS_MODEL", "q")
    assert selected(capsys) == "q"
    monkeypatch.setenv("MLOPS_MODEL", "qm")  # the registered name works too
    assert selected(capsys) == "q"


@pytest.mark.parametrize("environment, option", [("p", "q"), ("q", "p")])
def test_the_project_option_beats_mlops_model(repo, capsys, monkeypatch, environment, option):
    monkeypatch.setenv("MLOPS_MODEL", environment)
    assert selected(capsys, "--project", option) == option


def test_an_unknown_project_is_a_usage_error_naming_mlops_yml(repo, capsys):
    assert main(["--project", "nope", "model", "projects", "--default"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert str(repo / "mlops.yml") in err and err.count("\n") == 1


def test_the_project_option_reaches_the_steps_a_command_runs(repo, monkeypatch):
    """`mlops --project q ci run` runs its steps for q: a step's own `mlops` sees q, not the first project."""
    out = repo / "seen.txt"
    pipeline = repo / "which.yml"
    pipeline.write_text(f"steps:\n  - script: {sys.executable} -m ml_service.cli model projects --default > {out}\n")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the step's `mlops` is the tree under test
    monkeypatch.setenv("MLOPS_USER", "dev@example.com")
    assert main(["--project", "q", "ci", "run", str(pipeline)]) == 0
    assert out.read_text().strip() == "q"
    assert "MLOPS_MODEL" not in os.environ  # passed to the steps explicitly, never through our own environment


@pytest.mark.parametrize("argv", [["model", "projects", "--default"], ["ci", "schedules"], ["ci", "list"]])
def test_the_project_option_never_writes_the_environment(repo, capsys, monkeypatch, argv):
    monkeypatch.delenv("MLOPS_MODEL", raising=False)
    assert main(["--project", "q", *argv]) == 0
    assert "MLOPS_MODEL" not in os.environ


def test_a_usage_error_exits_2_a_failure_exits_1_each_with_one_line(repo, capsys):
    (repo / "mlops.yml").write_text("models: [unclosed\n")
    assert main(["model", "projects"]) == EXIT_USAGE  # a configuration error
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(repo / "mlops.yml") in err and "Traceback" not in err
    (repo / "mlops.yml").write_text(CONFIG)
    assert main(["init", "fresh", "--data", str(repo / "missing.csv"), "--target", "y"]) == EXIT_FAILED  # the work
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(repo / "missing.csv") in err
    assert not (repo / "fresh").exists()


@pytest.mark.parametrize("debug", ["", "0", "true", "yes"])
def test_only_mlops_debug_1_turns_an_expected_failure_into_a_traceback(repo, capsys, monkeypatch, debug):
    (repo / "mlops.yml").write_text("models: [unclosed\n")
    monkeypatch.setenv("MLOPS_DEBUG", debug)
    assert main(["model", "projects"]) == EXIT_USAGE
    monkeypatch.setenv("MLOPS_DEBUG", "1")
    with pytest.raises(UsageError):
        main(["model", "projects"])


def test_error_classes_map_to_their_exit_codes():
    from ml_service.cli.support import CommandError
    from ml_service.config import ConfigError
    from ml_service.containers import ImageError
    from ml_service.init import InitError

    assert (EXIT_FAILED, EXIT_USAGE) == (1, 2)
    assert MLOpsError("x").exit_code == EXIT_FAILED and UsageError("x").exit_code == EXIT_USAGE
    assert {cls.__name__: cls("x").exit_code for cls in (ConfigError, CommandError, InitError, ImageError)} == {
        "ConfigError": 2, "CommandError": 2, "InitError": 1, "ImageError": 1}


def test_build_options_override_the_environment_and_the_registered_model_picks_its_project(repo, monkeypatch):
    monkeypatch.setenv("MLOPS_BUILD_ID", "env-id")
    monkeypatch.setenv("MLOPS_BUILD_URI", "http://ci.example.com/env")
    given_options = command_settings(argparse.Namespace(build_id="7", build_uri="http://ci.example.com/7"))
    assert (given_options.build_id, given_options.build_uri) == ("7", "http://ci.example.com/7")
    without = command_settings(argparse.Namespace(build_id=None, build_uri=None))
    assert (without.build_id, without.build_uri) == ("env-id", "http://ci.example.com/env")
    assert command_settings(None).build_id == "env-id"
    assert command_settings(None, registered="qm").project == "q"
    assert command_settings(None, registered="unregistered").project == "p"


NAME = st.text(alphabet="abcXYZ019_.-", min_size=1, max_size=20)


@hypothesis_settings(deadline=None, max_examples=100)
@given(name=NAME, version=st.integers(1, 10_000), alias=st.text(alphabet="champion_-2", min_size=1, max_size=10))
def test_the_registered_name_is_read_from_every_reference_form(name, version, alias):
    for ref in (name, f"{name}:{version}", f"{name}@{alias}", f"models:/{name}@{alias}", f"models:/{name}/{version}"):
        assert registered_name(ref) == name, ref
    for bad in (f"{name}:{version}\n", f"{name}:\u0661", f":{version}", f"{name}@"):  # the library refuses it later
        assert registered_name(bad) is None, bad


def test_cli_start_up_imports_no_heavy_library():
    code = ("import sys; from ml_service.cli import build_parser; build_parser(); "
            "heavy = [m for m in ('mlflow', 'great_expectations', 'pandas', 'sklearn') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "[]"


def test_help_lists_every_command_group(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for group in ("pipeline", "model", "data", "ui", "init", "doctor", "ci", "deploy", "studio"):
        assert group in out


def test_pipeline_run_accepts_params_and_flags():
    args = build_parser().parse_args(["pipeline", "run", "p", "--param", "alpha=1", "--no-reuse",
                                      "--build-id", "7"])
    assert args.param == ["alpha=1"] and args.no_reuse and args.build_id == "7"


def test_unknown_pipeline_file_is_a_clear_error(tmp_path, capsys):
    assert main(["pipeline", "run", str(tmp_path / "x.yml")]) == EXIT_USAGE
    assert "pipeline file not found" in capsys.readouterr().err


def test_the_installed_command_is_one_line_with_its_exit_code_and_a_traceback_only_when_asked(tmp_path):
    """The process itself: exit status, stderr; run from the working tree under test."""
    missing = str(tmp_path / "x.yml")
    env = {k: v for k, v in os.environ.items() if k != "MLOPS_DEBUG"}
    quiet = subprocess.run([sys.executable, "-m", "ml_service.cli", "pipeline", "run", missing],
                           capture_output=True, text=True, cwd=ROOT, env=env)
    assert quiet.returncode == 2 and quiet.stderr.strip().count("\n") == 0 and "Traceback" not in quiet.stderr
    loud = subprocess.run([sys.executable, "-m", "ml_service.cli", "pipeline", "run", missing], capture_output=True,
                          text=True, cwd=ROOT, env={**env, "MLOPS_DEBUG": "1"})
    assert loud.returncode != 0 and "Traceback" in loud.stderr and "PipelineError" in loud.stderr


def test_every_platform_error_class_derives_from_the_one_base():
    import importlib
    import inspect
    import pkgutil

    import ml_service

    # inside the scoring process (env.py's EnvError too: standard library only; serving wraps it)
    allowed = {"HTTPError", "InputError", "SchemaError", "ServingConfigError", "EnvError"}
    strays = []
    for info in pkgutil.walk_packages(ml_service.__path__, "ml_service."):
        if ".templates" in info.name:
            continue
        module = importlib.import_module(info.name)
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == info.name and issubclass(cls, Exception) and not issubclass(cls, MLOpsError) \
                    and name not in allowed:
                strays.append(f"{info.name}.{name}")
    assert strays == []
