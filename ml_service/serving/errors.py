"""The one error a request can end in: a status and a message for the client (and headers, e.g. Allow)."""
from __future__ import annotations


class HTTPError(Exception):
    """A request that cannot be served; status, message and headers go to the client."""

    def __init__(self, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []
