"""The `tune` step of an ML pipeline (`tune: train` in pipeline.yml): run (or resume) the project's study over the
train step's params before train runs; train then gets the best values for the params it leaves unset.

    tune:
      tune: train                         # the step to tune; its files are this step's inputs
      after: [validate]
      params: {trials: 20, workers: 1, timeout: 0}   # trials: default tuning.trials; timeout 0: none

The trials nest under this step's MLflow run. With the same data and search space the study is the same, so a
rerun (or a study that `mlops tune` already ran, on any number of machines) adds only the trials still missing.
"""
from __future__ import annotations

import json
from pathlib import Path


def run(inputs: dict, params: dict, output_dir: Path, context: dict) -> dict:
    """Run the study; values.best_params are what the tuned step uses."""
    from ml_service.config import load_settings
    from ml_service.tune.run import run_study
    from ml_service.tune.trials import Target

    target = params["target"]
    spec = Target(target["function"], dict(target["params"]), {name: str(path) for name, path in inputs.items()},
                  target["step"])
    result = run_study(load_settings(), trials=int(params.get("trials") or 0) or None,
                       workers=int(params.get("workers") or 1), timeout=float(params.get("timeout") or 0) or None,
                       name=params.get("study") or None, parent_run_id=context["run_id"], target=spec)
    (Path(output_dir) / "best_params.json").write_text(json.dumps(result["params"], indent=2, sort_keys=True))
    values = ", ".join(f"{k}={v}" for k, v in result["params"].items())
    return {"metrics": {f"best_{result['metric']}": result["value"], "trials_finished": result["finished"]},
            "values": {"best_params": result["params"], "study": result["study"], "best_trial": result["number"]},
            "outcome": f"tuned: study {result['study']} best trial {result['number']} ({values}), "
                       f"{result['metric']} {result['value']:.6g}"}
