"""The plan (planner.py): dependency order, Azure's aggregation of results (Failed > Canceled >
SucceededWithIssues > Succeeded; only skipped children make a skipped parent) and the status functions a
condition reads (succeeded() accepts SucceededWithIssues; failed() holds when any dependency failed)."""
from dataclasses import dataclass, field
from itertools import permutations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ml_service.ci.model.pipeline import EngineError, Result, ordered
from ml_service.ci.runner import planner

RANK = [Result.FAILED, Result.CANCELED, Result.SUCCEEDED_WITH_ISSUES, Result.SUCCEEDED]


@dataclass
class Item:
    name: str
    depends_on: list = field(default_factory=list)


@pytest.mark.parametrize("results, expected", [
    (["Succeeded", "Failed"], "Failed"),
    (["Canceled", "Failed"], "Failed"),
    (["Canceled", "SucceededWithIssues"], "Canceled"),
    (["SucceededWithIssues", "Succeeded"], "SucceededWithIssues"),
    (["Succeeded", "Skipped"], "Succeeded"),
    (["Skipped", "Failed"], "Failed"),
    (["Skipped", "Skipped"], "Skipped"),
    ([], "Skipped"),
])
def test_results_aggregate_to_the_worst_one_that_ran(results, expected):
    for order in permutations(results):
        assert planner.worst(order) == expected


@given(st.lists(st.sampled_from(list(Result)), max_size=6))
def test_the_aggregate_is_the_highest_ranked_result_that_ran(results):
    ran = [r for r in results if r != Result.SKIPPED]
    expected = min(ran, key=RANK.index) if ran else Result.SKIPPED
    assert planner.worst(results) == expected


@pytest.mark.parametrize("deps, canceled, expected", [
    (["Succeeded"], False, {"succeeded": True, "failed": False, "succeededorfailed": True, "canceled": False}),
    (["SucceededWithIssues"], False, {"succeeded": True, "failed": False}),
    (["Succeeded", "Failed"], False, {"succeeded": False, "failed": True, "succeededorfailed": True}),
    (["Failed", "Failed"], False, {"succeeded": False, "failed": True}),
    (["Skipped"], False, {"succeeded": False, "failed": False}),
    (["Canceled"], False, {"succeeded": False, "failed": False}),
    ([], False, {"succeeded": True, "failed": False}),
    (["Succeeded"], True, {"succeeded": False, "failed": False, "succeededorfailed": False, "canceled": True,
                           "always": True}),
])
def test_status_functions_over_the_dependencies(deps, canceled, expected):
    status = planner.status_functions(deps, canceled)
    assert {name: status(name) for name in expected} == expected
    assert status("always") is True


def test_a_condition_reads_status_and_variables_and_a_bad_one_names_where():
    roots = {"variables": {"Build.Reason": "Schedule"}}
    assert planner.condition_holds("and(succeeded(), eq(variables['Build.Reason'], 'Schedule'))", ["Succeeded"],
                                   False, roots, "job A")
    assert not planner.condition_holds("succeeded()", ["SucceededWithIssues", "Failed"], False, roots, "job A")
    assert planner.condition_holds("failed()", ["SucceededWithIssues", "Failed"], False, roots, "job A")
    assert planner.condition_holds("'non-empty'", [], False, roots, "job A")
    assert not planner.condition_holds("''", [], False, roots, "job A")
    with pytest.raises(EngineError) as caught:
        planner.condition_holds("eq(1,", [], False, roots, "job A")
    assert str(caught.value).startswith("job A: condition: expected more")


def test_items_run_after_their_dependencies_and_a_cycle_is_refused():
    items = [Item("c", ["b"]), Item("a"), Item("b", ["a"]), Item("d", ["a", "c"])]
    assert [i.name for i in ordered(items)] == ["a", "b", "c", "d"]
    assert [i.name for i in ordered([Item("x"), Item("y")])] == ["x", "y"]  # written order otherwise
    with pytest.raises(EngineError, match="dependency cycle among p, q"):
        ordered([Item("p", ["q"]), Item("q", ["p"])])
