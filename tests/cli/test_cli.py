import subprocess
import sys

from ml_service.cli import build_parser


def test_cli_start_up_imports_no_heavy_library():
    code = ("import sys; from ml_service.cli import build_parser; build_parser(); "
            "heavy = [m for m in ('mlflow', 'great_expectations', 'pandas', 'sklearn') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_help_lists_every_command_group():
    result = subprocess.run([sys.executable, "-m", "ml_service.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for group in ("pipeline", "model", "data", "ui"):
        assert group in result.stdout


def test_pipeline_run_accepts_params_and_flags():
    args = build_parser().parse_args(["pipeline", "run", "p", "--param", "alpha=1", "--no-reuse",
                                      "--build-id", "7"])
    assert args.param == ["alpha=1"] and args.no_reuse and args.build_id == "7"


def test_unknown_pipeline_file_is_a_clear_error(tmp_path):
    result = subprocess.run([sys.executable, "-m", "ml_service.cli", "pipeline", "run", str(tmp_path / "x.yml")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "pipeline file not found" in result.stderr


def test_an_expected_failure_is_one_line_with_its_exit_code_and_a_traceback_only_when_asked(tmp_path):
    import os

    missing = str(tmp_path / "x.yml")
    quiet = subprocess.run([sys.executable, "-m", "ml_service.cli", "pipeline", "run", missing],
                           capture_output=True, text=True)
    assert quiet.returncode == 2 and quiet.stderr.strip().count("\n") == 0 and "Traceback" not in quiet.stderr
    loud = subprocess.run([sys.executable, "-m", "ml_service.cli", "pipeline", "run", missing], capture_output=True,
                          text=True, env={**os.environ, "MLOPS_DEBUG": "1"})
    assert loud.returncode != 0 and "Traceback" in loud.stderr and "PipelineError" in loud.stderr


def test_every_platform_error_class_derives_from_the_one_base():
    import importlib
    import inspect
    import pkgutil

    import ml_service
    from ml_service.errors import MLOpsError

    allowed = {"HTTPError", "InputError", "SchemaError", "ServingConfigError"}  # inside the scoring process
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
