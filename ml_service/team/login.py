"""A team user's name and password, checked by the team's MLflow server (its basic-auth app): the Studio's logins
in team mode, where the server's users are the users (issue 24).

One login is up to three requests with HTTP basic auth, standard library only (no MLflow import):
1. the server's user names, asked as this checkout's user (any user may list them in MLflow 3.x), to find the one
   that is the typed name by the platform's rule for names (`identity.find`: `Carol` logs in as `carol`);
2. `GET /api/2.0/mlflow/users/current` as that user with the typed password: 200 names the user (as the server
   spells it), 401 is a wrong password; any authenticated user may call it, and it reads the user row, so a user
   deleted on the server is refused at once even by a worker that still remembers the password;
3. for a name the server does not have, the same request as this checkout's own user with a random wrong password
   instead, so the server hashes a password either way (MLflow answers an unknown name without hashing: the time
   of the answer would tell which names exist).
The password goes to the server in one request header and is kept, logged and returned nowhere.
"""
from __future__ import annotations

import base64
import http.client
import json
import secrets
import urllib.error
import urllib.request
from typing import TYPE_CHECKING
from urllib.parse import quote

from ml_service import identity
from ml_service.errors import MLOpsError

if TYPE_CHECKING:
    from ml_service.config import Settings

CURRENT_USER = "/api/2.0/mlflow/users/current"
GET_USER = "/api/2.0/mlflow/users/get"  # MLflow 2.x has no /users/current; a user may read their own row here
LIST_USERS = "/api/2.0/mlflow/users/list"
STAMP = "/api/2.0/mlops/users/password-stamp"  # team/server_auth.py STAMP_PATH (the server side imports Flask)
TIMEOUT = 10.0


class LoginUnavailable(MLOpsError):
    """The team server cannot say whether a password is right (it does not answer, or answers with an error)."""


def applies(settings: Settings) -> bool:
    """True when logins are the team server's users: the checkout authenticates to an MLflow server as a user."""
    return bool(identity.server_user(settings))


def _get(settings: Settings, path: str, username: str, password: str, timeout: float) -> tuple[int, dict]:
    """GET path on the server as username: (status, JSON body or {}); LoginUnavailable when nothing answers."""
    request = urllib.request.Request(settings.tracking_uri.rstrip("/") + path)
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    try:
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:  # it answered
            with exc:
                status, raw = exc.code, exc.read()
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise LoginUnavailable(f"the team's MLflow server at {settings.tracking_uri} does not answer ({reason})") \
            from None
    if status >= 500:
        raise LoginUnavailable(f"the team's MLflow server at {settings.tracking_uri} failed ({status})")
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        body = {}
    return status, body if isinstance(body, dict) else {}


def server_users(settings: Settings, timeout: float = TIMEOUT) -> list[str] | None:
    """The server's user names, asked as this checkout's user; None when that user may not list them;
    LoginUnavailable when the server does not answer or has no users."""
    status, body = _get(settings, LIST_USERS, settings.tracking_username, settings.tracking_password, timeout)
    if status == 404:
        raise LoginUnavailable(f"the MLflow server at {settings.tracking_uri} has no users (it was not started with "
                               "--app-name basic-auth)")
    if status != 200:
        return None
    return [str(user.get("username", "")) for user in body.get("users", []) if isinstance(user, dict)]


def _server_name(settings: Settings, name: str, timeout: float) -> str | None:
    """The server's user that is name by the platform's rule; name itself when the list cannot be read, None when
    the list has no such user."""
    names = server_users(settings, timeout)
    if names is None:  # e.g. a server where only admins list users: the typed name is checked as it is
        return name
    return identity.find(names, name)


def password_stamp(settings: Settings, name: str, timeout: float = TIMEOUT) -> str:
    """A digest of name's stored password hash, as the team server of `mlops workspace up` gives it to an admin
    (team/server_auth.py); it changes when the password does. "" when the server cannot say (another server, not an
    admin asking, no answer)."""
    try:
        status, body = _get(settings, f"{STAMP}?username={quote(name)}", settings.tracking_username,
                            settings.tracking_password, timeout)
    except LoginUnavailable:
        return ""
    return str(body.get("stamp") or "") if status == 200 else ""


def still_a_user(settings: Settings, name: str, stamp: str = "", timeout: float = TIMEOUT) -> bool | None:
    """True when the server still has the user name (exactly so spelled) with the password it had at the login
    (stamp: password_stamp then, "" when unknown), False when it does not (deleted, or its password changed), None
    when it cannot say (it does not answer, or the checkout's user may not list users)."""
    try:
        names = server_users(settings, timeout)
    except LoginUnavailable:
        return None
    if names is not None and name not in names:
        return False
    if stamp:
        now = password_stamp(settings, name, timeout)
        if now and now != stamp:
            return False
    return None if names is None else True


def check(settings: Settings, name: str, password: str, timeout: float = TIMEOUT) -> str | None:
    """The server's name of the user when password is name's on the team server, None when it is not;
    LoginUnavailable when the server cannot say."""
    if not name or not password:
        return None
    known = _server_name(settings, name, timeout)
    if known is None:  # the same work for the server as a known name with a wrong password
        _get(settings, CURRENT_USER, settings.tracking_username, secrets.token_urlsafe(24), timeout)
        return None
    status, body = _get(settings, CURRENT_USER, known, password, timeout)
    if status == 404 and "user" not in body:  # a server without /users/current (MLflow 2.x), or a deleted user
        status, body = _get(settings, f"{GET_USER}?username={quote(known)}", known, password, timeout)
    user = body.get("user") if status == 200 else None
    spelled = str(user.get("username") or "") if isinstance(user, dict) else ""
    return spelled if spelled and identity.same(spelled, known) else None
