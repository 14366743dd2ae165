"""Shared options are declared once (ml_service/cli/options.py): no command module spells one of their flags
itself, and every parser that has one got it from there (same flag, same environment variable)."""
from __future__ import annotations

import ast

from ml_service.cli import options
from tests.conftest import ROOT

SHARED = {option.flag for option in vars(options).values() if isinstance(option, options.Option)}


def test_no_command_module_declares_a_shared_flag_itself():
    spelled = []
    for path in sorted((ROOT / "ml_service" / "cli").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument" and node.args \
                    and isinstance(node.args[0], ast.Constant) and node.args[0].value in SHARED:
                spelled.append(f"{path.name}:{node.lineno} {node.args[0].value}")
    assert SHARED >= {"--project", "--model", "--build-id", "--build-uri"}
    assert spelled == []


def test_an_option_adds_its_flag_with_the_command_s_changes_only(tmp_path):
    import argparse

    parser = argparse.ArgumentParser()
    options.MODEL_VERSION.add(parser, required=True)
    assert parser.parse_args(["--model", "m:3"]).model == "m:3"
    action = next(a for a in parser._actions if a.dest == "model")
    assert action.required and action.help == options.MODEL_VERSION.keywords["help"]
    assert options.PROJECT.env == "MLOPS_MODEL"
