"""The register step: put the promoted candidate in the registry with this project's tags."""
from __future__ import annotations

from pathlib import Path

import yaml

from ml_service.workspace.promotion import register_candidate


def run(inputs: dict[str, Path], params: dict, output_dir: Path, context: dict) -> dict:
    """Register the trained model (runs only when evaluate promoted it)."""
    config = yaml.safe_load(inputs["parameters"].read_text())
    metric = config["evaluation"]["metric"]
    return register_candidate(
        model_dir=inputs["train"],
        metric=metric,
        project_tags=config.get("registration", {}).get("tags", {}),
        train_step="train",
        context=context,
    )
