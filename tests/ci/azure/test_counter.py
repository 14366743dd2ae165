"""counter(prefix, seed) in a variable: the seed on a pipeline's first run with that prefix, one more on each
later run, a new prefix from the seed again; one value within a run (a resumed run keeps it); anywhere else
an error, as on Azure (docs/pipelines/process/expressions.md "counter")."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_each_run_counts_one_more_and_a_new_prefix_starts_at_the_seed(project):
    project.add("counter.yml")
    versions = [project.run("counter.yml").out.get("version") for _ in range(3)]
    assert versions == ["1.100", "1.101", "1.102"]
    assert project.run("counter.yml", {"major": "2"}).out.get("version") == "2.100"
    assert project.run("counter.yml").out.get("version") == "1.103"


def test_within_one_run_the_counter_keeps_its_value(project):
    project.add("counter.yml")
    run = project.run("counter.yml")
    store = project.store()
    assert [store.counter(run.run.id, "1.x", 100) for _ in range(2)] == [100, 100]  # what the run got, again
    assert project.run("counter.yml").out.get("version") == "1.101"


def test_counter_in_a_condition_is_an_error_and_the_step_does_not_run(project):
    project.add("counter_condition.yml")
    run = project.run("counter_condition.yml")
    assert run.result == "failed" and "ran" not in run.out
    assert "counter() can only be used in a variable" in run.error
