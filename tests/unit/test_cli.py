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
