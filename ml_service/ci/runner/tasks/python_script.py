"""PythonScript@0 (Tasks/PythonScriptV0/task.json): a Python file (scriptSource filePath, the default) or an
inline script run by pythonInterpreter (default: `python` on the step's PATH) with arguments."""
from __future__ import annotations

import secrets
import shlex

from ml_service.ci.runner.tasks.inputs import Input, TaskError, flag, read

NAME = "PythonScript@0"
KIND = "script"
INPUTS = {
    "scriptSource": Input("filePath"),
    "scriptPath": Input(""),
    "script": Input(""),
    "arguments": Input(""),
    "pythonInterpreter": Input(""),
    "workingDirectory": Input(""),
    "failOnStderr": Input("false"),
}


def script(given: dict) -> dict:
    """A bash step that runs the interpreter on the file, or on the inline text through a here-document."""
    values = read(NAME, INPUTS, given)
    interpreter = values["pythonInterpreter"] or \
        '"$(command -v python || command -v python3)"'  # the agent: `python` on PATH (python3 where only it exists)
    if values["scriptSource"].lower() == "inline":
        marker = f"PYTHON_SCRIPT_END_{secrets.token_hex(8)}"  # no line of the script can end the here-document
        text = (f"__script=\"$(mktemp \"${{AGENT_TEMPDIRECTORY:-/tmp}}/python.XXXXXX.py\")\"\n"
                f"cat > \"$__script\" <<'{marker}'\n{values['script']}\n{marker}\n"
                f"{interpreter} \"$__script\" {values['arguments']}\n__code=$?\nrm -f \"$__script\"\nexit $__code")
    else:
        if not values["scriptPath"]:
            raise TaskError(f"{NAME}: input 'scriptPath' is required when scriptSource is filePath")
        text = f"exec {interpreter} {shlex.quote(values['scriptPath'])} {values['arguments']}".rstrip()
    step = {"bash": text, "failOnStderr": flag(values["failOnStderr"])}
    if values["workingDirectory"]:
        step["workingDirectory"] = values["workingDirectory"]
    return step
