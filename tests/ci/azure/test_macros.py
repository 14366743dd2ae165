"""$(macros) and environment names as the agent makes them (hidden-probe sweep, issue 23).

Azure: docs/pipelines/process/phases.md "Job variables" (`$(my var with spaces)`, `$MY_VAR_WITH_SPACES`);
microsoft/azure-pipelines-agent src/Microsoft.VisualStudio.Services.Agent/Util/VarUtil.cs (ExpandValues: a macro is
`$(` to the next `)`, an unknown one stays and the search goes on one character later; ConvertToEnvVariableFormat:
dots and spaces to underscores, upper-cased).
"""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_names_with_spaces_and_dots(project):
    project.add("macro_names.yml")
    run = project.run("macro_names.yml")
    assert run.out["macro"] == "var with spaces value"  # before: $(my var with spaces) ran as a command: empty
    assert run.out["env"] == "var with spaces value"  # before: no such variable
    assert run.out["dotted"] == "dotted var value dotted var value"
    assert run.out["inner"] == "$(xsimple var value)"  # the inner one expanded, the outer unknown one kept
