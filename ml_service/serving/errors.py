"""The one error a request can end in: a status and a message for the client."""
from __future__ import annotations


class HTTPError(Exception):
    """A request that cannot be served; status and message go to the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message
