"""What every `mlops` command module shares: the settings of a command, its errors, exit codes."""
from __future__ import annotations

from ml_service.errors import EXIT_FAILED, EXIT_USAGE, UsageError
from ml_service.workspace.refs import ModelRefError, parse_model_ref

__all__ = ["EXIT_FAILED", "EXIT_USAGE", "CommandError", "command_settings", "registered_name"]


class CommandError(UsageError):
    """A command cannot proceed; the message is for the user."""


def command_settings(args=None, registered: str | None = None):
    """The workspace settings for a command: the selected model project (MLOPS_MODEL, --project), or the
    project whose registered model is `registered`, with --build-id / --build-uri applied."""
    from ml_service.config import load_settings, replace

    settings = load_settings()
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
