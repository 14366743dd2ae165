"""The secret masker: every secret value is replaced by *** in text that goes to logs."""
from __future__ import annotations


class Masker:
    """Replaces every secret value by *** in text that goes to logs."""

    def __init__(self):
        self.secrets: set[str] = set()

    def add(self, value: str) -> None:
        """Mask value from now on."""
        if value and len(value) >= 3:
            self.secrets.add(value)

    def __call__(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text
