"""What every `mlops` command module shares: the settings of a command, its errors, exit codes."""
from __future__ import annotations

import os
from collections.abc import Mapping

from ml_service.cli.options import PROJECT
from ml_service.errors import EXIT_FAILED, EXIT_USAGE, UsageError
from ml_service.workspace.refs import ModelRefError, parse_model_ref

__all__ = ["EXIT_FAILED", "EXIT_USAGE", "CommandError", "command_settings", "registered_name",
           "settings_env"]


class CommandError(UsageError):
    """A command cannot proceed; the message is for the user."""


def settings_env(args=None) -> Mapping[str, str]:
    """The environment the command's settings are read from: ours, with --project as MLOPS_MODEL (a value passed
    to load_settings; os.environ itself is never written)."""
    project = getattr(args, "project", None)
    return {**os.environ, PROJECT.env: project} if project else os.environ


def command_settings(args=None, registered: str | None = None):
    """The workspace settings for a command: the selected model project (--project, else MLOPS_MODEL), or the
    project whose registered model is `registered`, with --build-id / --build-uri applied."""
    from ml_service.config import load_settings, replace

    settings = load_settings(settings_env(args))
    if registered:
        settings = settings.for_registered(registered)
    changes = {k: v for k, v in (("build_id", getattr(args, "build_id", None)),
                                 ("build_uri", getattr(args, "build_uri", None))) if v}
    return replace(settings, **changes) if changes else settings


def registered_name(ref: str) -> str | None:
    """The registered model a model reference names, or None when ref is none: the command's library call then
    refuses it with its own error and exit code (workspace.registry.resolve_version, batch.model.check_ref)."""
    try:
        return parse_model_ref(ref).name
    except ModelRefError:
        return None
