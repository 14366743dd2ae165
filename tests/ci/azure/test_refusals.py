"""What cannot run here is refused before the run starts, naming the file and line and what to do (hidden-probe
sweep, issue 23): a variable group that mlops.yml does not define (docs/pipelines/library/variable-groups.md: a
group lives in the Azure DevOps library, which a local run does not have)."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_an_unknown_variable_group_is_refused_with_its_line(project):
    project.add("variable_group_unknown.yml")
    run = project.run("variable_group_unknown.yml")
    assert run.result == "failed" and "ran" not in run.out
    assert "variable_group_unknown.yml:3" in run.error  # before: no file or line
    assert "release-secrets" in run.error and "ci.variable_groups" in run.error


def test_an_object_spliced_into_text_is_refused_with_its_line(project):
    """Azure's expressions cannot convert an object to a string (expressions.md "Type casting": no conversion from
    an object; join(): "Complex objects are converted to empty string" only there); before, its Python text ran."""
    project.add("object_in_text.yml")
    run = project.run("object_in_text.yml")
    assert run.result == "failed" and "o" not in run.out  # before: OUT:o={'a': 1}
    assert "object_in_text.yml:7" in run.error and "parameters.o" in run.error
