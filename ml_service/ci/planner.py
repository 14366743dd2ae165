"""What runs, in which order, and whether: dependency order, conditions, aggregated results.

Stages run after their dependencies (default: the previous stage), jobs after theirs, steps in
order. The default condition is succeeded(); a failed dependency skips its dependants unless
their condition says otherwise. Results aggregate as Azure does: Failed > Canceled >
SucceededWithIssues > Succeeded, and only skipped children make a skipped parent.
"""
from __future__ import annotations

from typing import Iterable, TypeVar

from ml_service.ci import expressions as ex
from ml_service.ci.model import EngineError, Result

T = TypeVar("T")


def ordered(items: Iterable[T]) -> list[T]:
    """Items (with .name and .depends_on) in an order that honours every dependency."""
    done, order = set(), []
    remaining = list(items)
    while remaining:
        ready = [i for i in remaining if all(d in done for d in i.depends_on)]
        if not ready:
            where = getattr(remaining[0], "where", "")
            raise EngineError(f"{where}dependency cycle among {', '.join(i.name for i in remaining)}")
        order.append(ready[0])
        done.add(ready[0].name)
        remaining.remove(ready[0])
    return order


def worst(results: Iterable[str]) -> Result:
    """Aggregate results: Failed > Canceled > SucceededWithIssues > Succeeded; all skipped: Skipped."""
    ran = [Result(r) for r in results if r != Result.SKIPPED]
    if not ran:
        return Result.SKIPPED
    for result in (Result.FAILED, Result.CANCELED, Result.SUCCEEDED_WITH_ISSUES):
        if result in ran:
            return result
    return Result.SUCCEEDED


def status_functions(dep_results: list[str], canceled: bool):
    """always(), canceled(), succeeded(), failed(), succeededOrFailed() over the dependencies' results."""
    def status(name: str) -> bool:
        if name == "always":
            return True
        if name == "canceled":
            return canceled
        if name == "succeededorfailed":
            return not canceled
        if name == "succeeded":
            return not canceled and all(Result(r).ok for r in dep_results)
        return not canceled and any(r == Result.FAILED for r in dep_results)  # failed()
    return status


def condition_holds(condition: str, dep_results: list[str], canceled: bool, roots: dict, where: str) -> bool:
    """Evaluate a stage, job or step condition; a bad expression is an EngineError naming where."""
    try:
        return ex.to_bool(ex.run(condition, ex.Context(roots, status_functions(dep_results, canceled))))
    except ex.ExpressionError as exc:
        raise EngineError(f"{where}: condition: {exc}") from None
