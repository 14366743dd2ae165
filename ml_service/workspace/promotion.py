"""The promotion rule, shared by every model project: fair comparison and safe registration.

A candidate is compared with the champion **re-scored on the candidate's own test split** (the
model project says how to score a model: `rescore(model_dir) -> metric`), never with a number
stored when the champion was registered on other data. Registering and moving `champion` is a
compare-and-set against the champion the decision was made on: under a workspace lock, if the
champion changed meanwhile, the candidate is re-decided against the new one before anything is
written. "Not promoted" is a normal, successful outcome.
"""
from __future__ import annotations

import math
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from ml_service.workspace import registry

if TYPE_CHECKING:
    from ml_service.config import Settings

Rescore = Callable[[Path], float]


@dataclass(frozen=True)
class Decision:
    """Whether to register the candidate, and why, in one line."""

    promote: bool
    reason: str


def decide(metric: str, candidate: float, champion: float | None, higher_is_better: bool = False,
           champion_version: str | None = None, min_improvement: float = 0.0) -> Decision:
    """Promote only if the candidate is strictly better than the champion (by more than min_improvement).

    No champion: promote. A non-finite candidate is never promoted; a non-finite champion score
    (a champion that cannot score this data) is beaten by any finite candidate.
    """
    if not math.isfinite(candidate):
        return Decision(False, f"not promoted: candidate {metric} is {candidate}")
    if champion is None:
        return Decision(True, f"promoted: no champion yet; candidate {metric} {candidate:.4f}")
    versus = (f"candidate {metric} {candidate:.4f} vs champion v{champion_version} {champion:.4f} "
              "on the same test split")
    if not math.isfinite(champion):
        return Decision(True, f"promoted: {versus}")
    gain = candidate - champion if higher_is_better else champion - candidate
    if gain > min_improvement:
        return Decision(True, f"promoted: {versus}")
    rule = "not strictly better"
    if min_improvement > 0:
        rule = f"improvement {gain:.4f} <= min_improvement {min_improvement}"
    return Decision(False, f"not promoted: {versus} ({rule})")


def direction(evaluation: dict) -> bool:
    """higher_is_better from parameters.yml's evaluation: section (lower_is_better is accepted too)."""
    if "higher_is_better" in evaluation:
        return bool(evaluation["higher_is_better"])
    return not bool(evaluation.get("lower_is_better", True))


def _client(context: dict):
    import mlflow

    mlflow.set_tracking_uri(context["tracking_uri"])
    mlflow.set_registry_uri(context["tracking_uri"])
    return mlflow.MlflowClient(tracking_uri=context["tracking_uri"], registry_uri=context["tracking_uri"])


@contextmanager
def champion_model_dir(context: dict, version: str) -> Iterator[Path]:
    """The registered files of model_name version (an MLflow model folder), in a temporary folder."""
    import mlflow.artifacts

    from ml_service.workspace import provenance

    client = _client(context)  # points this process's MLflow at the workspace (models:/ URIs use the registry)
    found = client.get_model_version(context["model_name"], str(version))
    provenance.check(client, found, context["experiment_name"], context["tracking_uri"])  # before any unpickling
    with tempfile.TemporaryDirectory(prefix="mlops-champion-") as tmp:
        uri = f"models:/{context['model_name']}/{version}"
        yield Path(mlflow.artifacts.download_artifacts(uri, dst_path=tmp, tracking_uri=context["tracking_uri"]))


def rescore_champion(context: dict, version: str, rescore: Rescore) -> float:
    """The champion's metric on the candidate's test split; nan when it cannot score that data."""
    with champion_model_dir(context, version) as model_dir:
        try:
            return float(rescore(model_dir))
        except Exception as exc:  # e.g. the data changed shape: the champion cannot compete on it
            print(f"champion v{version} could not be scored on this test split: {type(exc).__name__}: {exc}")
            return float("nan")


def evaluate_candidate(context: dict, champion: dict, metric: str, candidate_value: float, rescore: Rescore,
                       higher_is_better: bool = False, min_improvement: float = 0.0) -> dict:
    """The evaluate step's result: decision, both numbers as metrics, the outcome in words.

    champion: the alias input of the step ({"version": "3" | None, ...}).
    """
    version = champion.get("version")
    if not version:  # no champion: a first run, unless versions show that one existed and was removed
        missing = champion.get("existing")  # the runner lists them in the alias input (the reuse key sees them)
        if missing is None and context.get("tracking_uri"):  # a champion document from elsewhere: ask the registry
            missing = registry.versions_missing_a_champion(_client(context), context["model_name"])
        if missing:
            raise registry.RegistryError(registry.missing_champion_message(context["model_name"], missing))
    champion_value = rescore_champion(context, str(version), rescore) if version else None
    decision = decide(metric, candidate_value, champion_value, higher_is_better, version, min_improvement)
    metrics = {f"candidate_{metric}": candidate_value}
    if champion_value is not None and math.isfinite(champion_value):
        metrics[f"champion_{metric}"] = champion_value
    return {"values": {"promote": decision.promote, "champion_version": str(version or ""),
                       "reason": decision.reason},
            "metrics": metrics, "outcome": decision.reason}


@contextmanager
def registry_lock(context: dict, model_name: str, settings: Settings | None = None) -> Iterator[None]:
    """One registration of model_name at a time in this workspace (a file lock in the state dir; on an
    MLflow server, a lock on the server, which every clone shares, taken as settings' server user)."""
    if context["tracking_uri"].startswith(("http://", "https://")):
        from ml_service.workspace import server_lock

        with server_lock.hold(_client(context), model_name, settings=settings):
            yield
        return
    from ml_service import locks

    state_dir = Path(context.get("state_dir") or tempfile.gettempdir())
    with locks.held(state_dir, "register", context["tracking_uri"], model_name):
        yield


def registration_tags(context: dict, metric: str, value: float, project_tags: dict) -> dict[str, str]:
    """The tags every registered version carries (see ARCHITECTURE.md, Registry)."""
    tags = {str(k): str(v) for k, v in project_tags.items()}
    tags.update({
        "experiment_name": context["experiment_name"],
        "metric": metric,
        metric: repr(float(value)),
        "pipeline_run_id": context["parent_run_id"],
        "git_commit": context["git"].get("commit", ""),
    })
    datasets = context.get("datasets") or []
    if datasets:
        tags["dataset_name"] = datasets[0]["name"]
        tags["dataset_digest"] = datasets[0]["digest"]
        tags["dataset_source"] = datasets[0]["source"]
    if context.get("build_id"):
        tags["BuildId"] = context["build_id"]
    if context.get("build_uri"):
        tags["BuildUri"] = context["build_uri"]
    return {k: v for k, v in tags.items() if v != ""}


def register_candidate(context: dict, log_model: Callable[[], str], metric: str, candidate_value: float,
                       decided_against: str | None, rescore: Rescore | None = None,
                       higher_is_better: bool = False, min_improvement: float = 0.0,
                       project_tags: dict | None = None, train_step: str = "train", reason: str = "") -> dict:
    """Register the candidate and move `champion` to it, if it still beats the current champion.

    log_model() logs the model in the project's MLflow flavor (the step's run is active) and
    returns its URI. decided_against: the champion version evaluate compared with (None: none);
    reason: evaluate's decision in words, repeated in the outcome.

    Idempotent: a training run has at most one version. When an earlier attempt was killed after
    creating it, this completes that registration (the same compare-and-set, then the alias moves or
    the version is marked not promoted) instead of failing or registering it twice.
    """
    import mlflow

    client = _client(context)
    name = context["model_name"]
    train_run = context["source_runs"][train_step]
    with registry_lock(context, name):
        existing = registry.versions_for_run(client, name, train_run)
        earlier = existing[0] if existing else None
        current = registry.get_alias(client, name, registry.CHAMPION)
        current_version = str(current.version) if current is not None else None
        if earlier is not None and current_version == str(earlier.version):
            # killed after the alias moved: finish it and report the version (no release was triggered yet);
            # registered by another run of the same training run: nothing new to release
            pending = earlier.tags.get(registry.REGISTRATION_TAG) == registry.PENDING
            registry.complete_registration(client, earlier)
            return {"values": {"registered_version": str(earlier.version) if pending else ""},
                    "outcome": f"{name} version {earlier.version} (run {train_run}) is already the champion"}
        if current_version is None and not decided_against:
            pending = earlier is not None and earlier.tags.get(registry.REGISTRATION_TAG) == registry.PENDING
            missing = registry.versions_missing_a_champion(client, name, str(earlier.version) if pending else None)
            if missing:
                raise registry.RegistryError(registry.missing_champion_message(name, missing))
        if earlier is not None and earlier.tags.get(registry.REGISTRATION_TAG) != registry.PENDING:
            return _not_promoted(f"not promoted: run {train_run} is already registered as {name} version "
                                 f"{earlier.version}, which is not the champion (v{current_version})")
        note = ""
        if current_version != (str(decided_against) if decided_against else None):
            if current_version is None:  # the champion alias was removed meanwhile: refuse, never guess
                return _refused(client, earlier, f"not promoted: champion v{decided_against} was removed while "
                                "this run evaluated; set one with `mlops model promote` and retrain")
            if rescore is None:
                return _refused(client, earlier, f"not promoted: the champion changed from v{decided_against} to "
                                f"v{current_version} while this run evaluated")
            value = rescore_champion(context, current_version, rescore)
            decision = decide(metric, candidate_value, value, higher_is_better, current_version, min_improvement)
            before = f"v{decided_against}" if decided_against else "none"
            note = f" (re-decided: the champion changed from {before} to v{current_version})"
            if not decision.promote:
                return _refused(client, earlier, decision.reason + note)
            reason = decision.reason
        if earlier is not None:
            version = registry.complete_registration(client, earlier)
            note += f" (completed the registration interrupted in pipeline run {earlier.tags.get('pipeline_run_id')})"
        else:
            with mlflow.start_run(run_id=context["run_id"]):
                model_uri = log_model()
            tags = registration_tags(context, metric, candidate_value, project_tags or {})
            tags[registry.DECISION_TAG] = reason[:5000]
            version = registry.register_model(client, name, model_uri, train_run, tags)
    why = reason[len("promoted: "):] if reason.startswith("promoted: ") else f"{metric} {candidate_value:.4f}"
    return {
        "values": {"registered_version": str(version.version)},
        "outcome": f"registered {name} version {version.version} ({why}); champion moved{note}",
    }


def _refused(client, earlier, reason: str) -> dict:
    """Not promoted; an interrupted registration of this run is closed as such."""
    if earlier is not None:
        registry.close_without_promotion(client, earlier, reason)
    return _not_promoted(reason)


def _not_promoted(reason: str) -> dict:
    print(reason)
    return {"values": {"registered_version": ""}, "outcome": reason}
