"""References to registered model versions, parsed in one place: NAME:VERSION, NAME@ALIAS, NAME (the latest
version), models:/NAME/VERSION and models:/NAME@ALIAS (MLflow's URIs)."""
from __future__ import annotations

import re
from typing import NamedTuple

from ml_service.errors import UsageError

PREFIX = "models:/"
VERSION = re.compile(r"[0-9]+")  # ASCII digits only: str.isdigit() would take '١' and '²'
FORBIDDEN = re.compile(r"[@:/]|[^\S ]")  # the separators of the forms above; whitespace but a plain space


class ModelRefError(UsageError):
    """Text that is no model reference; the message names the text and what is wrong with it (reason)."""

    def __init__(self, text: str, reason: str):
        super().__init__(f"model reference {text!r}: {reason}")
        self.text = text
        self.reason = reason


class ModelRef(NamedTuple):
    """A registered model and one of: a version number, an alias, neither (its latest version)."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        """NAME:VERSION, NAME@ALIAS or NAME: the form `mlops` commands take."""
        if self.version is not None:
            return f"{self.name}:{self.version}"
        return f"{self.name}@{self.alias}" if self.alias is not None else self.name

    @property
    def uri(self) -> str:
        """models:/NAME/VERSION or models:/NAME@ALIAS (MLflow's form; a bare NAME has none)."""
        if self.version is not None:
            return f"{PREFIX}{self.name}/{self.version}"
        if self.alias is not None:
            return f"{PREFIX}{self.name}@{self.alias}"
        raise ModelRefError(self.name, "a models:/ URI needs a version or an alias")


def _part(text: str, value: str, what: str) -> str:
    if not value:
        raise ModelRefError(text, f"the {what} is empty")
    bad = FORBIDDEN.search(value)
    if bad:
        raise ModelRefError(text, f"the {what} {value!r} contains {bad.group(0)!r}")
    return value


def _version(text: str, value: str) -> int:
    if not VERSION.fullmatch(value):
        raise ModelRefError(text, f"the version {value!r} is not a number (digits 0-9)")
    return int(value)


def parse_model_ref(text: str, need_version_or_alias: bool = False) -> ModelRef:
    """The ModelRef that text names; a ModelRefError naming the text for anything else.

    Args:
        text: NAME:VERSION, NAME@ALIAS, NAME, models:/NAME/VERSION or models:/NAME@ALIAS (models:/NAME:VERSION
            and models:/NAME too).
        need_version_or_alias: refuse a bare NAME (a command that must not guess the latest version).
    """
    body = text[len(PREFIX):] if text.startswith(PREFIX) else text
    if "@" in body:
        name, alias = body.split("@", 1)
        ref = ModelRef(_part(text, name, "name"), alias=_part(text, alias, "alias"))
    elif "/" in body and text.startswith(PREFIX):
        name, version = body.rsplit("/", 1)
        ref = ModelRef(_part(text, name, "name"), version=_version(text, version))
    elif ":" in body:  # NAME:VERSION, also after models:/ (batch has always taken models:/NAME:VERSION)
        name, version = body.rsplit(":", 1)
        ref = ModelRef(_part(text, name, "name"), version=_version(text, version))
    else:
        ref = ModelRef(_part(text, body, "name"))
    if need_version_or_alias and ref.version is None and ref.alias is None:
        raise ModelRefError(text, f"give NAME@ALIAS or NAME:VERSION (e.g. {ref.name}@champion)")
    return ref
