"""Optional Bearer key authentication, compared in constant time."""
from __future__ import annotations

import hmac


def authorized(header: bytes | None, keys: tuple[str, ...]) -> bool:
    """True if the Authorization header carries one of keys (every key is compared, always)."""
    if not keys:
        return True
    presented = b""
    if header and header[:7].lower() == b"bearer ":
        presented = header[7:].strip()
    ok = False
    for key in keys:
        ok |= hmac.compare_digest(presented, key.encode())
    return ok and bool(presented)
