"""Who acts on a run, and how we know.

An identity is a name with its proof:
- `session`: the studio's login authenticated it (passed to `approvals.decide(approver=...)`); in team mode the
  team server checked the password;
- `token`: MLOPS_TOKEN holds a personal token of this workspace (`mlops ci token create`); in team mode a token
  names a server user (as the server spells it), checked when it is created and again when it decides an approval;
- `os-account`: the operating-system account this process runs as (the kernel says so);
- `claimed`: MLOPS_USER or git user.email, which anyone can set: never proof.

Tokens are stored as SHA-256 hashes in <state_dir>/ci/tokens.json (mode 0600): a token is shown
once, when it is created. Whoever can write the workspace's state folder can mint tokens (and could
edit runs.db as well): keep that folder private to the people who run the pipelines.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from ml_service import env as envvars
from ml_service import identity as same_user  # who a user is: one rule for names (this module is about proof)
from ml_service.config import Settings
from ml_service.errors import MLOpsError, UsageError

PROOFS = ("session", "token", "os-account", "claimed")
TOKEN_PREFIX = "mlops_"


class IdentityError(MLOpsError):
    """An identity cannot be established (a token that is not this workspace's ...)."""


@dataclass(frozen=True)
class Identity:
    """A name and how it was proven."""

    name: str
    proof: str

    @property
    def proven(self) -> bool:
        """True unless the name is only claimed."""
        return self.proof != "claimed"

    def __str__(self) -> str:
        return f"{self.name} ({self.proof})"


os_account = same_user.os_account  # one home (ml_service/identity.py); the name stays for its callers


def claimed_name(settings: Settings) -> str:
    """The name someone gives: MLOPS_USER, else git user.email, else the OS account."""
    from ml_service.workspace.gitinfo import user_email

    return settings.user or user_email(settings.root) or os_account()


def _tokens_path(settings: Settings) -> Path:
    return settings.state_dir / "ci" / "tokens.json"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _read_tokens(settings: Settings) -> list[dict]:
    path = _tokens_path(settings)
    try:
        entries = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise IdentityError(f"{path}: unreadable token store: {exc}") from None
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def _write_tokens(settings: Settings, entries: list[dict]) -> None:
    path = _tokens_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(entries, file, indent=1)
    os.replace(temporary, path)


def team_user(settings: Settings, name: str) -> str:
    """In team mode the server user that is name (as the server spells it): the team server's users are the users;
    UsageError when it has none, IdentityError when it cannot say. Elsewhere name itself."""
    from ml_service.team import login as team_login

    if not team_login.applies(settings):
        return name
    try:
        names = team_login.server_users(settings)
    except team_login.LoginUnavailable as exc:
        raise IdentityError(f"cannot check that {name!r} is a user of the team workspace: {exc}") from None
    if names is None:
        raise IdentityError(f"cannot check that {name!r} is a user of the team workspace {settings.tracking_uri}: "
                            f"its user {settings.tracking_username!r} may not list users")
    known = same_user.find(names, name)
    if known is None:
        raise UsageError(f"{name!r} is not a user of the team workspace {settings.tracking_uri}: a token names a "
                         f"server user (an admin adds one: mlops workspace user add {name})")
    return known


def create_token(settings: Settings, name: str = "") -> tuple[str, str]:
    """A new personal token for name (default: the OS account; in team mode this checkout's server user, and the
    name must be a server user's); returns (name as stored, token). Only its hash is kept."""
    name = (name or same_user.server_user(settings) or os_account()).strip()
    if not name or any(c.isspace() for c in name):
        raise UsageError(f"a token's name must be one word (an approver's identity), got {name!r}")
    name = team_user(settings, name)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    entries = _read_tokens(settings)
    entries.append({"name": name, "sha256": _hash(token), "created": time.time(), "created_by": os_account()})
    _write_tokens(settings, entries)
    return name, token


def list_tokens(settings: Settings) -> list[dict]:
    """Name, creation time and creator of every token (never the token)."""
    return [{k: e.get(k) for k in ("name", "created", "created_by")} for e in _read_tokens(settings)]


def revoke_tokens(settings: Settings, name: str) -> int:
    """Remove every token of name; returns how many."""
    entries = _read_tokens(settings)
    kept = [e for e in entries if not same_user.same(str(e.get("name", "")), name)]
    _write_tokens(settings, kept)
    return len(entries) - len(kept)


def token_identity(settings: Settings, token: str, recheck: bool = False) -> Identity:
    """The identity a presented token proves; IdentityError when it is not a token of this workspace. With recheck
    (a decision), in team mode its user must still be a user of the team server, and the server must say so."""
    digest = _hash(token.strip())
    for entry in _read_tokens(settings):
        if hmac.compare_digest(str(entry.get("sha256", "")), digest):
            name = str(entry["name"])
            if recheck:
                _still_a_server_user(settings, name)
            return Identity(name, "token")
    raise IdentityError("MLOPS_TOKEN is not a token of this workspace (mlops ci token create makes one)")


def _still_a_server_user(settings: Settings, name: str) -> None:
    """In team mode, IdentityError unless the team server still has the token's user (deleted since the token was
    made: the token proves nothing) or when the server cannot say (a decision is not taken on an unchecked proof)."""
    from ml_service.team import login as team_login

    if not team_login.applies(settings):
        return
    try:
        names = team_login.server_users(settings)
    except team_login.LoginUnavailable as exc:
        raise IdentityError(f"MLOPS_TOKEN names {name!r}; the team server cannot say whether that is still one of "
                            f"its users: {exc}") from None
    if names is not None and name not in names:
        raise IdentityError(f"MLOPS_TOKEN names {name!r}, who is no longer a user of the team workspace "
                            f"{settings.tracking_uri}: the token proves nothing (mlops ci token revoke {name})")


def proven(settings: Settings, session: str | None = None, env: dict | None = None,
           recheck: bool = False) -> list[Identity]:
    """The identities this caller proves: a studio session, else MLOPS_TOKEN's and the OS account; recheck: see
    token_identity (a decision asks; recording who queued a run does not)."""
    if session:
        return [Identity(session, "session")]
    env = os.environ if env is None else env
    found = []
    token = envvars.MLOPS_TOKEN.get(env)
    if token:
        found.append(token_identity(settings, token, recheck))
    found.append(Identity(os_account(), "os-account"))
    return found


def describe(identities: list[Identity]) -> str:
    """'token:alice,os-account:root': how a requester proved who they are (kept with the run)."""
    return ",".join(f"{i.proof}:{i.name}" for i in identities)


def parse(text: str) -> list[Identity]:
    """The identities `describe` wrote."""
    found = []
    for part in (text or "").split(","):
        proof, _, name = part.partition(":")
        if name and proof in PROOFS:
            found.append(Identity(name, proof))
    return found
