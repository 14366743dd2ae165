"""Who a user is, once for the whole platform: one rule for comparing names, and the name a run records.

Three stores hold names: Studio accounts (`studio/users.py`), CI personal tokens (`ci/identity.py`) and, in a team
workspace, the MLflow server's users (`team/users.py`); approver lists in mlops.yml name them. All of them compare
names with `same` (Unicode NFKC, then casefolded): `Alice@Example.com`, `alice@example.com` and the full-width
`ａｌｉｃｅ@example.com` are one person, so no second account can differ from an approver's by case or by a
look-alike form only. Each store refuses a second name that `same` matches (issue 24).

In a team workspace the server's users are the users: the Studio logs people in against the server (its own
accounts are not used then: `studio/logins.py`, `team/login.py`), and a run the platform creates records as its user
the server user this checkout authenticates as (the server checked that password), never a claimed name
(MLOPS_USER, git user.email), which is kept beside it as `mlops.claimed_user`. Standard library only.
"""
from __future__ import annotations

import os
import pwd
import unicodedata
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from ml_service.config import Settings

CLAIMED_TAG = "mlops.claimed_user"


def key(name: str) -> str:
    """The form two names are compared in: NFKC-normalized, casefolded, without surrounding spaces."""
    return unicodedata.normalize("NFKC", name).casefold().strip()


def same(a: str, b: str) -> bool:
    """True when a and b name the same user."""
    return key(a) == key(b)


def find(names: Iterable[str], name: str) -> str | None:
    """The name among names that is the same user as name (an exact match first), None when there is none."""
    names = list(names)
    if name in names:
        return name
    wanted = key(name)
    return next((known for known in names if key(known) == wanted), None)


def among(name: str, names: Iterable[str]) -> bool:
    """True when name is the same user as one of names (e.g. an approver list)."""
    return find(names, name) is not None


def os_account() -> str:
    """The operating-system account of this process."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return f"uid{os.getuid()}"


def server_user(settings: Settings) -> str:
    """The team server user this checkout authenticates as; "" for the embedded workspace."""
    if settings.tracking_uri.startswith(("http://", "https://")):
        return settings.tracking_username
    return ""


def run_user_tags(settings: Settings) -> dict[str, str]:
    """The user tags of a run the platform creates: on a team server the server user (mlflow.user) and any other
    claimed name beside it; elsewhere the claimed name (MLOPS_USER) when there is one."""
    user = server_user(settings)
    if not user:
        return {"mlflow.user": settings.user} if settings.user else {}
    tags = {"mlflow.user": user}
    if settings.user and not same(settings.user, user):
        tags[CLAIMED_TAG] = settings.user
    return tags
