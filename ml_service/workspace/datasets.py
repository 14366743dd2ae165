"""Datasets as MLflow dataset inputs: name, digest and source of every file a run read."""
from __future__ import annotations

import sys
import warnings
from pathlib import Path


def dataset_input(path: Path, name: str, targets: str | None = None, context: str = "training"):
    """An MLflow DatasetInput for a CSV file and a dict of its name, digest and source.

    Returns (None, {}) when the file cannot be parsed as a table: data validation reports why.
    """
    import mlflow.data
    import pandas as pd
    from mlflow.entities import DatasetInput, InputTag

    try:
        frame = pd.read_csv(path)
    except Exception as exc:  # unreadable data is reported by the data contract, not here
        print(f"warning: {path} not logged as a dataset: {exc}", file=sys.stderr)
        return None, {}
    with warnings.catch_warnings():  # MLflow warns that a local path matches two equivalent source types
        warnings.simplefilter("ignore", UserWarning)
        dataset = mlflow.data.from_pandas(frame, source=str(path), name=name,
                                          targets=targets if targets in frame.columns else None)
    entry = DatasetInput(dataset._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", context)])
    return entry, {"name": dataset.name, "digest": dataset.digest, "source": str(path), "rows": len(frame)}
