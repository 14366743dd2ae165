"""Batch scoring as an ML pipeline step, for the local or the docker compute target:

    score:
      function: ml_service.batch.step:score
      inputs:
        data: {path: data/to_score.csv}       # a file or a folder of parts
        model: {alias: champion}              # optional: the version holding an alias (part of the reuse key)
      params: {model: "", output: "", workers: 0, chunk_rows: 100000, max_reject_fraction: 0.01}
      compute: docker

The model is params.model (NAME@ALIAS or NAME:VERSION), else the version of the `model` alias input, else
the project's champion. The predictions go to params.output, else to the step's output folder
(`predictions/`). A rerun of the step after a kill resumes the job.
"""
from __future__ import annotations

import json
from pathlib import Path

from ml_service.batch import BatchError


def _model_ref(inputs: dict, params: dict, context: dict) -> str:
    if params.get("model"):
        return str(params["model"])
    if "model" in inputs:
        info = json.loads(Path(inputs["model"]).read_text())
        if not info.get("version"):
            raise BatchError(f"model {info.get('name')} has no version with alias {info.get('alias')!r}")
        return f"{info['name']}:{info['version']}"
    return f"{context['model_name']}@champion"


def score(inputs: dict, params: dict, output_dir: Path, context: dict) -> dict:
    """Score inputs["data"] with the model; the job's counts as metrics, the output folder as a value."""
    from ml_service.batch.job import JobSpec, run_job
    from ml_service.config import load_settings

    if "data" not in inputs:
        raise BatchError("the batch step needs an input named 'data' (a file or a folder of parts)")
    output = Path(params["output"]) if params.get("output") else Path(output_dir) / "predictions"
    spec = JobSpec(model=_model_ref(inputs, params, context), input=Path(inputs["data"]), output=output,
                   workers=int(params.get("workers") or 0), chunk_rows=int(params.get("chunk_rows") or 100_000),
                   max_reject_fraction=float(params.get("max_reject_fraction", 0.01)))
    result = run_job(load_settings(), spec)
    return {"metrics": {"rows_in": result.rows, "rows_scored": result.scored, "rows_rejected": result.rejected},
            "values": {"output": str(output), "model_version": result.model_version, "batch_run_id": result.run_id},
            "outcome": f"scored {result.scored:,} of {result.rows:,} rows with {result.model_name} "
                       f"v{result.model_version} ({result.rejected:,} rejected) -> {output}"}
