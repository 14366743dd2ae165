"""`mlops` starts fast: its help imports no command module, and its table of commands is what they register."""
from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys

from ml_service import cli
from tests.conftest import ROOT

PROBE = """
import sys
from ml_service.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
print("MODULES", " ".join(sorted(sys.modules)))
"""


def loaded(argv: list[str]) -> set[str]:
    """The modules a fresh interpreter holds after `mlops ARGV` (without the coverage measurement `make test`
    starts in every subprocess: coverage itself imports dataclasses and more)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COV_CORE_", "COVERAGE_"))}
    out = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env=env).stdout
    return set(next(line for line in out.splitlines() if line.startswith("MODULES ")).split()[1:])


def test_the_table_of_commands_is_what_the_modules_register_in_the_same_order():
    registered = []
    for name in cli.COMMAND_MODULES:
        parser = argparse.ArgumentParser()
        groups = parser.add_subparsers()
        importlib.import_module(name).add_commands(groups)
        registered += [(action.dest, name, action.help) for action in groups._choices_actions]
    assert registered == [(command, module, text) for command, (module, text) in cli.COMMANDS.items()]


def test_help_imports_no_command_module_no_settings_and_no_yaml():
    modules = loaded(["--help"])
    assert "ml_service.cli" in modules
    light = ("ml_service.cli", "ml_service.cli.options", "ml_service.errors")
    heavy = {m for m in modules if m.startswith("ml_service.") and m not in light}
    assert not heavy, heavy
    assert not {"yaml", "dataclasses", "ml_service.config", "mlflow", "pandas"} & modules


def test_a_command_imports_its_own_module_only_and_still_parses_its_options():
    modules = loaded(["--project", "alpha", "ci", "lint", "--help"])
    assert "ml_service.cli.ci" in modules
    assert not {"ml_service.cli.deploy", "ml_service.cli.serve", "ml_service.cli.studio", "ml_service.cli.doctor",
                "ml_service.doctor"} & modules
    done = subprocess.run([sys.executable, "-m", "ml_service.cli", "--project", "alpha", "ci", "lint", "--help"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "--help" in done.stdout


def test_an_unknown_command_is_refused_with_the_known_ones():
    done = subprocess.run([sys.executable, "-m", "ml_service.cli", "nope"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert all(f"'{command}'" in done.stderr for command in cli.COMMANDS)
