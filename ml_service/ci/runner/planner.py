"""What runs, in which order, and whether: dependency order (model.pipeline.ordered), conditions, aggregated
results.

Stages run after their dependencies (default: the previous stage), jobs after theirs, steps in
order. The default condition is succeeded(); a failed dependency skips its dependants unless
their condition says otherwise. Results aggregate as Azure does: Failed > Canceled >
SucceededWithIssues > Succeeded, and only skipped children make a skipped parent.
"""
from __future__ import annotations

from typing import Iterable

from ml_service.ci.model import expressions as ex
from ml_service.ci.model.pipeline import EngineError, Result


def worst(results: Iterable[str]) -> Result:
    """Aggregate results: Failed > Canceled > SucceededWithIssues > Succeeded; all skipped: Skipped."""
    ran = [Result(r) for r in results if r != Result.SKIPPED]
    if not ran:
        return Result.SKIPPED
    for result in (Result.FAILED, Result.CANCELED, Result.SUCCEEDED_WITH_ISSUES):
        if result in ran:
            return result
    return Result.SUCCEEDED


def status_functions(dep_results: list[str], canceled: bool, named: dict[str, str] | None = None):
    """always(), canceled(), succeeded(), failed(), succeededOrFailed() over the dependencies' results; with
    names (`succeeded('A', 'B')`), over those dependencies only (named: dependency -> result; None in a step,
    where Azure takes no names). A name that is not a dependency is an error, as on Azure."""
    def status(name: str, names: tuple[str, ...] = ()) -> bool:
        results = dep_results
        if names:
            if named is None:
                raise ex.ExpressionError(f"{name}() takes no names in a step's condition")
            lowered = {k.lower(): v for k, v in named.items()}
            unknown = [n for n in names if n.lower() not in lowered]
            if unknown:
                raise ex.ExpressionError(f"{name}({', '.join(map(repr, names))}): {', '.join(unknown)} is not a "
                                         f"dependency (dependsOn: {', '.join(named) or 'none'})")
            results = [lowered[n.lower()] for n in names]
        if name == "always":
            return True
        if name == "canceled":
            return canceled
        if name == "succeededorfailed":
            return not canceled
        if name == "succeeded":
            return not canceled and all(Result(r).ok for r in results)
        return not canceled and any(r == Result.FAILED for r in results)  # failed()
    return status


def condition_holds(condition: str, dep_results: list[str], canceled: bool, roots: dict, where: str,
                    named: dict[str, str] | None = None) -> bool:
    """Evaluate a stage, job or step condition; a bad expression is an EngineError naming where."""
    try:
        status = status_functions(dep_results, canceled, named)
        return ex.to_bool(ex.run(condition, ex.Context(roots, status)))
    except ex.ExpressionError as exc:
        raise EngineError(f"{where}: condition: {exc}") from None
