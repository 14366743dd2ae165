"""The error of the CI service's commands (queue, run, approve, cancel ...)."""
from __future__ import annotations

from ml_service.errors import MLOpsError


class CIError(MLOpsError):
    """A CI command cannot be carried out; the message says why."""
