"""References to registered model versions: NAME:VERSION, NAME@ALIAS, models:/NAME/VERSION, models:/NAME@ALIAS."""
from __future__ import annotations


def model_of(ref: str) -> str:
    """The registered model name in NAME:VERSION, NAME@ALIAS, models:/NAME@ALIAS or NAME."""
    ref = ref[len("models:/"):] if ref.startswith("models:/") else ref
    for separator in ("@", ":", "/"):
        ref = ref.split(separator, 1)[0]
    return ref
