"""`mlops init`: a new model project from a CSV file (profile -> data contract, templates -> project).

Heavy libraries (pandas) are imported inside the functions that need them, never at import time.
"""
from ml_service.errors import MLOpsError


class InitError(MLOpsError):
    """The project cannot be created; the message names the problem. Nothing was written."""
