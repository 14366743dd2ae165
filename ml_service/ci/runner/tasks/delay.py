"""Delay@1 (task reference delay-v1): an agentless job's step that waits delayForMinutes (default 0) minutes. Here
a real wait in the engine, cut short (the step failing) by the run's cancel or by the step's or job's timeout,
as on Azure where the job's timeoutInMinutes bounds it."""
from __future__ import annotations

import time

from ml_service.ci.runner.tasks.inputs import Input, TaskError, check, read

NAME = "Delay@1"
KIND = "server"
INPUTS = {"delayForMinutes": Input("0")}


def problems(given: dict) -> list[str]:
    """What in the inputs as written cannot run (checked before the run)."""
    found = check(NAME, INPUTS, given)
    value = str((given or {}).get("delayForMinutes", "0")).strip()
    if "$(" not in value and "${{" not in value:
        try:
            if float(value or "0") < 0:
                raise ValueError
        except ValueError:
            found.append(f"{NAME}: delayForMinutes must be a number of minutes, got {value!r}")
    return found


def run(given: dict, ctx: dict) -> str:
    """Wait; fails when the deadline (ctx['deadline'], a time.time()) comes first."""
    for problem in problems(given):
        raise TaskError(problem)
    minutes = float(read(NAME, INPUTS, given)["delayForMinutes"] or 0)
    end = time.time() + minutes * 60
    deadline = ctx.get("deadline", float("inf"))
    while time.time() < end:
        if time.time() >= deadline:
            raise TaskError(f"{NAME}: the job's timeout came before the delay of {minutes:g} minute(s) ended")
        time.sleep(max(0.0, min(1.0, end - time.time(), deadline - time.time())))
    return f"waited {minutes:g} minute(s)"
