"""The smoke-test payload of a model project: scoring/smoke.json, {"data": [rows or records, ...]}."""
from __future__ import annotations

import json

from ml_service.config import ConfigError, Settings


def smoke_payload(settings: Settings) -> dict | None:
    """The selected project's smoke payload, or None to use the example the service advertises."""
    path = settings.model.smoke_payload if settings.models else None
    if path is None or not path.is_file():
        return None
    try:
        payload = json.loads(path.read_text())
    except ValueError as exc:
        raise ConfigError(f"{path}: malformed JSON: {exc}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), list) or not payload["data"]:
        raise ConfigError(f'{path}: expected {{"data": [rows or records, ...]}} with at least one row')
    return payload
