"""A step function a hostile teammate names in a pipeline definition: it writes params.marker (proof that it ran)."""
from __future__ import annotations

from pathlib import Path


def mark(inputs: dict, params: dict, output_dir: Path, context: dict) -> dict:
    """Write the marker file params['marker'] names."""
    Path(params["marker"]).write_text("the reader's pipeline ran here")
    return {"outcome": "marked"}
