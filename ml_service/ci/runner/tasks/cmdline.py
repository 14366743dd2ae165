"""CmdLine@2 (Tasks/CmdLineV2/task.json, cmdline.ts): the same as a `script:` step on Linux."""
from __future__ import annotations

from ml_service.ci.runner.tasks.inputs import Input, flag, read

NAME = "CmdLine@2"
KIND = "script"
INPUTS = {
    "script": Input("echo Write your commands here\n\necho Hello world\n"),
    "workingDirectory": Input(""),
    "failOnStderr": Input("false"),
}


def script(given: dict) -> dict:
    """The `script:` step this task is."""
    values = read(NAME, INPUTS, given)
    step = {"script": values["script"], "failOnStderr": flag(values["failOnStderr"])}
    if values["workingDirectory"]:
        step["workingDirectory"] = values["workingDirectory"]
    return step
