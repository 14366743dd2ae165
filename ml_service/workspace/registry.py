"""Model registry helpers: champion lookup, guarded registration, listing."""
from __future__ import annotations

from dataclasses import dataclass

from ml_service.errors import MLOpsError


class RegistryError(MLOpsError):
    """A registry operation was refused or failed, with the reason."""


CHAMPION = "champion"
# Each version registered here carries where its registration got to: pending (created, aliases not yet
# moved: a kill came in between), complete (aliases moved) or not_promoted (completed later without
# promotion). A rerun completes a pending registration instead of creating another version.
REGISTRATION_TAG = "mlops.registration"
PENDING, COMPLETE, NOT_PROMOTED = "pending", "complete", "not_promoted"
DECISION_TAG = "mlops.decision"


@dataclass(frozen=True)
class VersionSummary:
    """What `mlops model list` shows for one version."""

    name: str
    version: str
    aliases: list[str]
    run_id: str
    metric: str
    created: int
    tags: dict


def get_alias(client, name: str, alias: str):
    """The ModelVersion holding alias, or None when the model or alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def versions_for_run(client, name: str, run_id: str) -> list:
    """Versions of name already registered from run_id (tag run_id)."""
    from mlflow.exceptions import MlflowException

    try:
        return list(client.search_model_versions(f"name='{name}' and tags.run_id='{run_id}'"))
    except MlflowException:
        return []


def register_model(client, name: str, model_uri: str, run_id: str, tags: dict[str, str],
                   aliases: tuple[str, ...] = (CHAMPION,)):
    """Register model_uri as a new version of name, tagged, and move the given aliases to it.

    Refuses a run that already has a registered version: one training run, one version.
    """
    existing = versions_for_run(client, name, run_id)
    if existing:
        raise RegistryError(
            f"run {run_id} is already registered as {name} version {existing[0].version}; "
            "a run can be registered only once"
        )
    import mlflow

    from ml_service.workspace.faults import pause_point

    version = mlflow.register_model(model_uri, name, tags={**tags, "run_id": run_id, REGISTRATION_TAG: PENDING})
    pause_point("after-version")
    return complete_registration(client, version, aliases)


def complete_registration(client, version, aliases: tuple[str, ...] = (CHAMPION,)):
    """Move the aliases to a registered version and mark its registration complete (idempotent)."""
    for alias in aliases:
        client.set_registered_model_alias(version.name, alias, version.version)
    client.set_model_version_tag(version.name, version.version, REGISTRATION_TAG, COMPLETE)
    return client.get_model_version(version.name, version.version)


def close_without_promotion(client, version, reason: str) -> None:
    """A pending registration whose rerun decided not to promote: say so on the version."""
    client.set_model_version_tag(version.name, version.version, REGISTRATION_TAG, NOT_PROMOTED)
    client.set_model_version_tag(version.name, version.version, DECISION_TAG, reason[:5000])


def versions_missing_a_champion(client, name: str, exclude: str | None = None) -> list[str]:
    """When `champion` is missing: the versions that show a champion existed (registered here and promoted,
    or registered by hand), newest first. Empty when the alias is set or no such version exists (a first run).
    exclude: a version whose interrupted registration is being completed."""
    if get_alias(client, name, CHAMPION) is not None:
        return []
    return [v.version for v in list_versions(client, name)
            if v.version != exclude and v.tags.get(REGISTRATION_TAG) not in (PENDING, NOT_PROMOTED)]


def missing_champion_message(name: str, versions: list[str]) -> str:
    """Why a retrain refuses to promote, and the command that fixes it."""
    listed = ", ".join(versions[:10]) + (", ..." if len(versions) > 10 else "")
    return (f"{name} has registered versions ({listed}) but no '{CHAMPION}' alias (was it deleted?): "
            f"refusing to promote, because a missing champion is not a first run. Choose the champion with "
            f"`mlops model promote {name}:VERSION`, then retrain")


def list_versions(client, name: str) -> list[VersionSummary]:
    """All versions of name, newest first, with their aliases."""
    from mlflow.exceptions import MlflowException

    if "'" in name and '"' in name:
        raise RegistryError(f"cannot list the versions of {name!r}: the registry's search takes no name holding "
                            "both kinds of quote")
    quote = '"' if "'" in name else "'"
    try:
        versions = client.search_model_versions(f"name={quote}{name}{quote}")
        aliases = client.get_registered_model(name).aliases if versions else {}
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return []
        # e.g. the MLflow server is down: never "no versions" (a retrain would take that for a first run)
        first = (str(exc.message).strip().splitlines() or [""])[0][:300]
        raise RegistryError(f"cannot list the versions of {name}: {first}") from None
    summaries = []
    for v in versions:
        summaries.append(VersionSummary(
            name=v.name, version=str(v.version),
            aliases=sorted(a for a, held in aliases.items() if str(held) == str(v.version)),
            run_id=v.tags.get("run_id", ""), metric=v.tags.get("metric", ""),
            created=int(v.creation_timestamp or 0), tags=dict(v.tags),
        ))
    return sorted(summaries, key=lambda s: int(s.version), reverse=True)


def resolve_version(client, ref):
    """A ModelVersion from a model reference (workspace.refs: NAME:VERSION, NAME@ALIAS, NAME for the latest,
    models:/ URIs), given as text or a ModelRef."""
    from mlflow.exceptions import MlflowException

    from ml_service.workspace.refs import ModelRefError, parse_model_ref

    try:
        parsed = parse_model_ref(ref) if isinstance(ref, str) else ref
    except ModelRefError as exc:
        raise RegistryError(f"cannot find model '{ref}': {exc.reason}") from None
    try:
        if parsed.alias is not None:
            return client.get_model_version_by_alias(parsed.name, parsed.alias)
        if parsed.version is not None:
            return client.get_model_version(parsed.name, str(parsed.version))
        versions = list_versions(client, parsed.name)
        if not versions:
            raise RegistryError(f"model '{ref}' has no registered versions")
        return client.get_model_version(parsed.name, versions[0].version)
    except MlflowException as exc:
        raise RegistryError(f"cannot find model '{ref}': {exc.message}") from None


def delete_version(client, name: str, version: str, in_use: dict[str, set[str]]) -> None:
    """Delete a version unless an environment serves it, production's desired state names it, or it
    holds an alias (champion, qa, production). in_use: version -> environments (from the deployment records)."""
    from mlflow.exceptions import MlflowException

    try:
        found = client.get_model_version(name, version)
    except MlflowException:
        raise RegistryError(f"model '{name}' has no version {version}") from None
    reasons = sorted(in_use.get(str(version), set()))
    aliases = sorted(found.aliases or [])
    if reasons or aliases:
        why = "; ".join(filter(None, [f"in use by {', '.join(reasons)}" if reasons else "",
                                      f"holds alias(es) {', '.join(aliases)}" if aliases else ""]))
        raise RegistryError(f"refusing to delete {name} version {version}: {why}")
    client.delete_model_version(name, version)
