"""Local Studio users: names with salted scrypt password hashes, in <state_dir>/studio/users.json (the embedded
workspace's logins; in team mode the team server's users log in instead: logins.py).

Only hashes are stored (stdlib hashlib.scrypt, a random 16-byte salt per user); the file is written
atomically with mode 0600. A login with an unknown name costs as much as one with a known name.

Names are compared by the platform's one rule (ml_service/identity.py: NFKC, casefolded), as the engine compares
approver lists and CI token names: `Alice@example.com` and `alice@example.com` are one user, so a second account
cannot differ from an approver's by case or look-alike form only (issue 24). A login names the user as stored.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

from ml_service import identity
from ml_service.errors import UsageError

SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1}  # about 50 ms per hash on this machine; 16 MiB of memory
MIN_PASSWORD = 8
MAX_NAME = 200


class UserError(UsageError):
    """A user cannot be added or removed; the message says why."""


def users_file(state_dir: Path) -> Path:
    """Where the Studio's users live."""
    return Path(state_dir) / "studio" / "users.json"


def _hash(password: str, salt: bytes, params: dict) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=params["n"], r=params["r"], p=params["p"],
                          maxmem=64 * 1024 * 1024, dklen=32)


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot be read as JSON ({exc}); fix or remove it") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of user names")
    return data


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
    os.replace(temp, path)


def check_name(name: str) -> str:
    """A user name as given, or UserError: not empty, no spaces or control characters, not too long."""
    if not name or len(name) > MAX_NAME or any(c.isspace() or ord(c) < 32 for c in name):
        raise UserError(f"user name {name!r}: 1 to {MAX_NAME} characters, no spaces or control characters "
                        "(use the identity approvers are listed under in mlops.yml, e.g. an email)")
    return name


def add_user(state_dir: Path, name: str, password: str) -> bool:
    """Add a user or change its password; returns True when the user is new."""
    check_name(name)
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password of {name} must have at least {MIN_PASSWORD} characters")
    path = users_file(state_dir)
    data = _read(path)
    same = stored_name(data, name)
    if same is not None and same != name:
        raise UserError(f"user {name!r}: the Studio already has {same!r}, the same name without regard to case or form "
                        f"(approvers are matched that way); change that user's password with the name {same!r}")
    salt = secrets.token_bytes(16)
    new = name not in data
    data[name] = {"salt": salt.hex(), "hash": _hash(password, salt, SCRYPT).hex(), "scrypt": SCRYPT}
    _write(path, data)
    return new


def stored_name(data: dict, name: str) -> str | None:
    """The user name in data that is the same user as name (identity.same), None when there is none."""
    return identity.find(data, name)


def canonical(state_dir: Path, name: str) -> str:
    """name as the users file spells it (name itself when no user matches)."""
    return stored_name(_read(users_file(state_dir)), name) or name


def remove_user(state_dir: Path, name: str) -> None:
    """Remove a user; UserError when there is none."""
    path = users_file(state_dir)
    data = _read(path)
    if name not in data:
        raise UserError(f"no Studio user {name!r} in {path}")
    del data[name]
    _write(path, data)


def list_users(state_dir: Path) -> list[str]:
    """User names, sorted."""
    return sorted(_read(users_file(state_dir)))


def verify(state_dir: Path, name: str, password: str) -> bool:
    """True when name is a user and password is theirs."""
    data = _read(users_file(state_dir))
    entry = data.get(stored_name(data, name) or name)
    if not isinstance(entry, dict):
        _hash(password, b"0" * 16, SCRYPT)  # the same cost as a real check
        return False
    try:
        expected = bytes.fromhex(entry["hash"])
        actual = _hash(password, bytes.fromhex(entry["salt"]), {**SCRYPT, **entry.get("scrypt", {})})
    except (KeyError, ValueError, TypeError):
        return False
    return hmac.compare_digest(expected, actual)
