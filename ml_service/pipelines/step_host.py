"""Runs one pipeline step inside its own process: `python -m ml_service.pipelines.step_host SPEC.json`.

A step is a function `fn(inputs, params, output_dir, context) -> dict | None`; the dict may carry
`metrics` (name -> number), `values` (JSON values later steps can test with `when:`) and
`outcome` (one line for people). The result is written to the spec's result_path.
"""
from __future__ import annotations

import importlib
import json
import math
import sys
import traceback
from pathlib import Path


def _check_result(result) -> dict:
    if result is None:
        return {}
    if not isinstance(result, dict):
        raise TypeError(f"a step must return a dict or None, not {type(result).__name__}")
    metrics = result.get("metrics", {})
    for key, value in metrics.items():
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise TypeError(f"metric '{key}' must be a finite number, got {value!r}")
    return {"metrics": metrics, "values": result.get("values", {}), "outcome": str(result.get("outcome", ""))}


def main(argv: list[str]) -> int:
    """Load the spec, call the step function, write its result or its error."""
    spec = json.loads(Path(argv[0]).read_text())
    try:
        module_name, function_name = spec["function"].split(":", 1)
        function = getattr(importlib.import_module(module_name), function_name)
        result = function(
            inputs={name: Path(path) for name, path in spec["inputs"].items()},
            params=spec["params"],
            output_dir=Path(spec["output_dir"]),
            context=spec["context"],
        )
        Path(spec["result_path"]).write_text(json.dumps(_check_result(result)))
        return 0
    except Exception as exc:  # the step's own failure: report it, never hide it
        traceback.print_exc()
        Path(spec["error_path"]).write_text(json.dumps({"type": type(exc).__name__, "message": str(exc)}))
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
