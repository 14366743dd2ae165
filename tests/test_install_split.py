"""`make install` installs the builds' gate tools, `make test` the rest of [dev]: together exactly
[dev], at its pins."""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib

from tests.conftest import ROOT

SCRIPT = ROOT / "environment_setup" / "requirements.py"


def gate_tools() -> list[str]:
    """GATE_TOOLS as the Makefile lists them."""
    return re.search(r"^GATE_TOOLS := (.+)$", (ROOT / "Makefile").read_text(), re.M).group(1).split()


def requirements(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "dev", *args], capture_output=True, text=True, timeout=60)


def test_install_and_install_test_split_dev_without_gap_or_overlap():
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    gate = requirements("--only", *gate_tools()).stdout.split()
    rest = requirements("--except", *gate_tools()).stdout.split()
    assert sorted(gate + rest) == sorted(dev)
    assert not set(gate) & set(rest)
    assert {re.split(r"[<>=\[]", r)[0] for r in gate} == set(gate_tools())  # flake8 and pytest for the builds
    assert any(r.startswith("playwright") for r in rest)  # test-only clients wait for make test


def test_a_gate_tool_missing_from_dev_is_an_error_naming_it():
    done = requirements("--only", "pytest", "no-such-tool")
    assert done.returncode == 1
    assert "no-such-tool" in done.stderr and not done.stdout.strip()
