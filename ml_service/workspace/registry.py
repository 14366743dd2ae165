"""Model registry helpers: champion lookup, guarded registration, listing."""
from __future__ import annotations

from dataclasses import dataclass

from ml_service.errors import MLOpsError


class RegistryError(MLOpsError):
    """A registry operation was refused or failed, with the reason."""


CHAMPION = "champion"


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

    version = mlflow.register_model(model_uri, name, tags={**tags, "run_id": run_id})
    for alias in aliases:
        client.set_registered_model_alias(name, alias, version.version)
    return version


def list_versions(client, name: str) -> list[VersionSummary]:
    """All versions of name, newest first, with their aliases."""
    from mlflow.exceptions import MlflowException

    try:
        versions = client.search_model_versions(f"name='{name}'")
        aliases = client.get_registered_model(name).aliases if versions else {}
    except MlflowException:
        return []
    summaries = []
    for v in versions:
        summaries.append(VersionSummary(
            name=v.name, version=str(v.version),
            aliases=sorted(a for a, held in aliases.items() if str(held) == str(v.version)),
            run_id=v.tags.get("run_id", ""), metric=v.tags.get("metric", ""),
            created=int(v.creation_timestamp or 0), tags=dict(v.tags),
        ))
    return sorted(summaries, key=lambda s: int(s.version), reverse=True)


def resolve_version(client, ref: str):
    """A ModelVersion from NAME:VERSION, NAME@ALIAS or NAME (latest)."""
    from mlflow.exceptions import MlflowException

    try:
        if "@" in ref:
            name, alias = ref.split("@", 1)
            return client.get_model_version_by_alias(name, alias)
        if ":" in ref:
            name, version = ref.rsplit(":", 1)
            return client.get_model_version(name, version)
        versions = list_versions(client, ref)
        if not versions:
            raise RegistryError(f"model '{ref}' has no registered versions")
        return client.get_model_version(ref, versions[0].version)
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
