"""Steps are typed objects made by one factory (runner/step_factory.py, as nektos/act's step_factory.go): each
step kind of Azure's YAML gives its own class, the first kind key decides, and what is no step is refused with
where it is, before anything of it runs."""
from __future__ import annotations

import pytest

from ml_service.ci.model.pipeline import STEP_KINDS, EngineError
from ml_service.ci.runner.step_factory import (KINDS, CheckoutStep, DownloadStep, PublishStep, ScriptStep, ShellStep,
                                               TaskStep, new_step)


@pytest.mark.parametrize("raw, cls", [
    ({"script": "echo hi"}, ScriptStep),
    ({"bash": "echo hi"}, ScriptStep),
    ({"task": "CopyFiles@2", "inputs": {"Contents": "**"}}, TaskStep),
    ({"checkout": "self"}, CheckoutStep),
    ({"download": "current", "artifact": "model"}, DownloadStep),
    ({"publish": "out", "artifact": "model"}, PublishStep),
    ({"pwsh": "Write-Host hi"}, ShellStep),
    ({"powershell": "Write-Host hi"}, ShellStep),
])
def test_each_step_kind_is_made_into_its_own_type(raw, cls):
    step = new_step(raw, "Build/Job/step1")
    assert type(step) is cls and step.raw is raw and step.path == "Build/Job/step1"
    assert step.kind == next(k for k in raw if k in STEP_KINDS)


def test_the_factory_knows_every_step_kind_the_schema_accepts():
    assert set(KINDS) == set(STEP_KINDS)


def test_the_typed_step_reads_its_fields_and_the_agents_defaults():
    script = new_step({"bash": "\n  make test\nmore", "name": "tests", "retryCountOnTaskFailure": "2",
                       "continueOnError": "true", "enabled": "false", "condition": "always()"}, "p")
    assert (script.script, script.name, script.attempts, script.continue_on_error, script.enabled, script.condition) \
        == ("\n  make test\nmore", "tests", 3, True, False, "always()")
    assert script.display_name == "Bash: make test"
    plain = new_step({"script": ""}, "p")
    assert (plain.name, plain.attempts, plain.continue_on_error, plain.enabled, plain.condition, plain.display_name) \
        == ("", 1, False, True, "succeeded()", "Script: ")
    task = new_step({"task": "CopyFiles@2"}, "p")
    assert (task.task, task.inputs, task.display_name) == ("CopyFiles@2", {}, "CopyFiles@2")
    assert new_step({"checkout": "tools", "displayName": "Get $(x)"}, "p").display_name == "Get $(x)"
    assert new_step({"checkout": "tools"}, "p").repository == "tools"
    assert new_step({"download": "none"}, "p").display_name == "Download: none"


def test_the_first_kind_in_azures_order_decides_when_a_mapping_has_two():
    assert type(new_step({"task": "Bash@3", "script": "echo"}, "p")) is ScriptStep


@pytest.mark.parametrize("raw, says", [
    (["script", "echo"], "Build/Job/step2: a step must be a mapping"),
    ("echo", "Build/Job/step2: a step must be a mapping"),
    ({"run": "echo", "name": "x"}, "Build/Job/step2: unknown step ['name', 'run']"),
])
def test_what_is_no_step_is_refused_with_where_it_is(raw, says):
    with pytest.raises(EngineError) as raised:
        new_step(raw, "Build/Job/step2")
    assert str(raised.value) == says
