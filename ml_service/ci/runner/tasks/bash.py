"""Bash@3 (Tasks/BashV3/task.json, bash.ts): an inline script run as a `bash:` step, or a file run with
`bash <file> <arguments>`; workingDirectory, failOnStderr, bashEnvValue (BASH_ENV)."""
from __future__ import annotations

import shlex

from ml_service.ci.runner.tasks.inputs import Input, flag, read

NAME = "Bash@3"
KIND = "script"
INPUTS = {
    "targetType": Input("filePath"),
    "filePath": Input(""),
    "arguments": Input(""),
    "script": Input("# Write your commands here\n\necho 'Hello world'\n"),
    "workingDirectory": Input(""),
    "failOnStderr": Input("false"),
    "bashEnvValue": Input(""),
    "noProfile": Input("true"),
    "noRc": Input("true"),
}


def script(given: dict) -> dict:
    """The script step this task is: its text (macros not yet expanded), workingDirectory, failOnStderr, env."""
    values = read(NAME, INPUTS, given)
    if values["targetType"].lower() == "inline":
        text = values["script"]
    else:
        if not values["filePath"]:
            from ml_service.ci.runner.tasks.inputs import TaskError

            raise TaskError(f"{NAME}: input 'filePath' is required when targetType is filePath")
        text = f"exec bash {shlex.quote(values['filePath'])} {values['arguments']}".rstrip()
    step = {"bash": text, "failOnStderr": flag(values["failOnStderr"])}
    if values["workingDirectory"]:
        step["workingDirectory"] = values["workingDirectory"]
    if values["bashEnvValue"]:
        step["env"] = {"BASH_ENV": values["bashEnvValue"]}
    return step
