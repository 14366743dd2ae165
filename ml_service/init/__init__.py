"""`mlops init`: a new model project from a CSV file (profile -> data contract, templates -> project).

Heavy libraries (pandas) are imported inside the functions that need them, never at import time.
"""


class InitError(Exception):
    """The project cannot be created; the message names the problem. Nothing was written."""
