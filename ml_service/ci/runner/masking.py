"""The secret masker: every secret value, and every form a tool may print it in, becomes *** in logs.

The forms are the Azure Pipelines agent's value encoders (ValueEncoders.cs): base64 at the three
byte offsets a secret can start at inside a longer base64 text (so base64("user:" + secret) is
masked too), JSON string escaping, URI data escaping, XML escaping, command-line and expression
escapes, the value without its double quotes; and, beyond the agent, hex, base64url and each line
of a multi-line secret (a log is masked line by line).
"""
from __future__ import annotations

import base64
import json
import urllib.parse

MIN_LENGTH = 3  # shorter values would mask ordinary text everywhere
MIN_ENCODED = 4


def _base64_shifted(data: bytes, shift: int) -> str:
    """The base64 characters that depend only on data, when data starts `shift` bytes into a base64 stream."""
    padded = b"\0" * shift + data
    encoded = base64.b64encode(padded).decode()
    lead = (0, 2, 3)[shift]  # characters that also hold bits of the bytes before data
    full = len(padded) * 8 // 6  # characters after this one also hold bits of the bytes after data
    return encoded[lead:full]


def encodings(value: str) -> set[str]:
    """Every form of value the masker replaces."""
    forms = {value}
    data = value.encode()
    for shift in range(3):
        text = _base64_shifted(data, shift)
        forms |= {text, text.replace("+", "-").replace("/", "_")}
    forms |= {
        json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1],  # JSON string escape
        urllib.parse.quote(value, safe="-_.~"), urllib.parse.quote_plus(value),  # URI data escape
        value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
        .replace("'", "&apos;"),  # XML
        value.replace('"', '\\"'),  # command-line argument escape
        value.replace("'", "''"),  # expression string escape
        value.strip('"'),
        data.hex(), data.hex().upper(),
    }
    forms |= {line.strip() for line in value.splitlines() if len(line.strip()) >= MIN_LENGTH}
    return {form for form in forms if len(form) >= MIN_ENCODED or form == value}


class Masker:
    """Replaces every secret value, in every encoded form, by *** in text that goes to logs."""

    def __init__(self):
        self.secrets: set[str] = set()
        self._forms: list[str] = []

    def add(self, value: str) -> None:
        """Mask value (and its encodings) from now on."""
        if not value or len(value) < MIN_LENGTH or value in self.secrets:
            return
        self.secrets.add(value)
        self._forms = sorted(set(self._forms) | encodings(value), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, "***")
        return text
