"""YAML scalars keep their text, as Azure DevOps reads them (YAML 1.1 typing changed them: 3.10 -> 3.1,
0001 -> 1, yes/on -> True, 0755 -> 493, 1:30 -> 90).

Azure: the agent's pipeline parser reads every scalar's text and converts only where a setting needs a
boolean or a number (Agent.Listener/DistributedTask.Pipelines/Yaml/TypeConverters/ConverterUtil.general.cs:
ReadBoolean accepts true/y/yes/on/false/n/no/off from the text, ReadInt32 parses the text); yaml-schema
boolean.md lists the same words. Real files rely on it: DiamondLightSource/python-workflows' matrix had
PYTHON_VERSION: 3.10 unquoted, mlops-project-template's config-infra-*.yml postfix: 0001.
"""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_variable_values_keep_their_text(project):
    project.add("yaml_scalars.yml")
    run = project.run("yaml_scalars.yml")
    assert run.result == "succeeded"
    assert {k: run.out[k] for k in ("PY", "SUFFIX", "FLAG", "SWITCH", "TRUTH", "MODE", "CLOCK", "BIG")} == {
        "PY": "3.10", "SUFFIX": "0001", "FLAG": "yes", "SWITCH": "on", "TRUTH": "true", "MODE": "0755",
        "CLOCK": "1:30", "BIG": "1_000"}
    assert run.out["macro"] == "3.10"


def test_parameter_defaults_and_env_values_keep_their_text(project):
    project.add("yaml_scalars.yml")
    run = project.run("yaml_scalars.yml")
    assert run.out["param"] == "3.10"  # a string parameter's default
    assert run.out["env"] == "0001"


def test_a_parameter_given_on_the_command_line_keeps_its_text(project):
    """Regression guard (passes today: --param values are kept as text)."""
    project.add("yaml_scalars.yml")
    run = project.run("yaml_scalars.yml", params={"version": "3.10"})
    assert run.out["param"] == "3.10"
