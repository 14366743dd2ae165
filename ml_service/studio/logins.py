"""Whose password a Studio login checks: in team mode the team server's users (the checkout authenticates to an
MLflow server as a user: `team/login.py`), else the Studio's own users (`users.py`, <state_dir>/studio/users.json).

Either way a login yields only the user's name, spelled as its store spells it; the session keeps that name and
never the password.
"""
from __future__ import annotations

import functools
from typing import Callable

from ml_service.config import Settings
from ml_service.studio import users
from ml_service.team import login as team_login

LoginUnavailable = team_login.LoginUnavailable


def team_server(settings: Settings) -> str:
    """The team server whose users log in to this Studio; "" when the Studio's own users do."""
    return settings.tracking_uri if team_login.applies(settings) else ""


def check(settings: Settings, name: str, password: str) -> str | None:
    """The user name to open a session for when password is name's, None when it is not; LoginUnavailable when the
    team server cannot say (never a session then)."""
    if team_server(settings):
        return team_login.check(settings, name, password)
    if not users.verify(settings.state_dir, name, password):
        return None
    return users.canonical(settings.state_dir, name)  # one spelling per user (names match casefolded)


def stamp(settings: Settings, name: str) -> str:
    """What a session of name keeps to notice a password change (team mode: the server's password stamp); ""."""
    return team_login.password_stamp(settings, name) if team_server(settings) else ""


def still_a_user(settings: Settings) -> Callable[[str, str], bool | None] | None:
    """How a session's user is looked up again, with the session's stamp (team mode: is it still a server user with
    the password of the login?); None: never (the Studio's own users: removing one with `mlops studio user remove`
    ends nothing before the session's idle time)."""
    if not team_server(settings):
        return None
    return functools.partial(team_login.still_a_user, settings)


def no_users(settings: Settings) -> bool:
    """True when nobody can log in yet: no team server and no Studio user."""
    return not team_server(settings) and not users.list_users(settings.state_dir)
