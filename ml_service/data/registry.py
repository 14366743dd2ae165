"""The data set registry: versions of a model project's data set, kept in the MLflow workspace.

`add` validates a CSV file against the data set's contract (the `contract:` of the model projects in
mlops.yml whose `dataset:` it is) and refuses a file that breaks it (nothing is stored). A valid file
with new content becomes version N+1: one run of the experiment `mlops-datasets` holds the file as an
artifact (so a team workspace, whose artifacts are shared, shares it), the version, its sha256 and row
count as tags, and the file as an MLflow dataset input. Content already registered is not stored twice.

`materialize` gives a version as a local file (downloaded once into .mlops/datasets/NAME/vN/), which
retraining reads as `$data`: the path names the version, and a model version's `dataset_source` and
`dataset_digest` tags (written at registration) then name the data it was trained on.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ml_service.config import ModelProject, Settings
from ml_service.errors import UsageError

EXPERIMENT = "mlops-datasets"
KIND_TAG = "mlops.kind"
NAME_TAG = "mlops.dataset.name"
VERSION_TAG = "mlops.dataset.version"
DIGEST_TAG = "mlops.dataset.sha256"
ROWS_TAG = "mlops.dataset.rows"
ORIGIN_TAG = "mlops.dataset.origin"
ARTIFACT_DIR = "dataset"


class DataSetError(UsageError):
    """A data set or one of its versions cannot be found or added; the message says why."""


class DataRejected(DataSetError):
    """The file breaks the data set's contract: nothing was stored."""


@dataclass(frozen=True)
class Version:
    """One registered version of a data set."""

    name: str
    version: int
    sha256: str
    rows: int
    run_id: str
    created: int  # ms since the epoch
    origin: str = ""
    new: bool = True

    @property
    def digest(self) -> str:
        """The short digest MLflow datasets and model version tags carry (first 8 hex of the sha256)."""
        return self.sha256[:8]


def projects_using(settings: Settings, name: str) -> list[ModelProject]:
    """The model projects whose data set (mlops.yml `dataset:`) is name."""
    return [m for m in settings.models if m.dataset == name]


def known_names(settings: Settings) -> list[str]:
    """Every data set a model project of mlops.yml uses."""
    return list(dict.fromkeys(m.dataset for m in settings.models if m.dataset))


def project_of(settings: Settings, name: str) -> ModelProject:
    """The (first) model project that uses data set name; an error naming the known ones otherwise."""
    users = projects_using(settings, name)
    if not users:
        raise DataSetError(f"no model project in {settings.root / 'mlops.yml'} uses a data set named '{name}' "
                           f"(known: {', '.join(known_names(settings)) or 'none'})")
    return users[0]


def sha256_of(path: Path) -> str:
    """The sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def _lock(settings: Settings, name: str):
    from ml_service import locks

    with locks.held(settings.state_dir, "dataset", settings.tracking_uri, name):
        yield


def _client(settings: Settings):
    from ml_service.workspace import tracking

    return tracking.connect(settings)


def _version(run, new: bool = False) -> Version:
    tags = run.data.tags
    return Version(name=tags[NAME_TAG], version=int(tags[VERSION_TAG]), sha256=tags[DIGEST_TAG],
                   rows=int(tags.get(ROWS_TAG, 0)), run_id=run.info.run_id, created=run.info.start_time,
                   origin=tags.get(ORIGIN_TAG, ""), new=new)


def versions(settings: Settings, name: str, client=None) -> list[Version]:
    """Every version of a data set, oldest first."""
    client = client or _client(settings)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return []
    runs = client.search_runs([experiment.experiment_id],
                              filter_string=f"tags.`{NAME_TAG}` = '{name}' and attributes.status = 'FINISHED'",
                              max_results=10000)
    trusted = _writers(settings, client, name)
    return sorted((_version(r) for r in runs if VERSION_TAG in r.data.tags and trusted(str(r.info.user_id or ""))),
                  key=lambda v: v.version)


def _writers(settings: Settings, client, name: str):
    """user -> whether a version added by that user counts: on a team server, a user who may write the experiment
    of a project using the data set (a retrain trains on the newest version, so a reader's would poison it; any
    team user can create `mlops-datasets` when it does not exist yet). The rule of workspace/provenance.py."""
    from ml_service.workspace.provenance import untrusted_writer

    if not settings.tracking_uri.startswith(("http://", "https://")):
        return lambda user: True
    experiments = [client.get_experiment_by_name(p.experiment) for p in projects_using(settings, name)]
    ids = [e.experiment_id for e in experiments if e is not None]
    known: dict[str, bool] = {}

    def trusted(user: str) -> bool:
        if user not in known:
            known[user] = any(not untrusted_writer(settings.tracking_uri, user, i) for i in ids)
        return known[user]

    return trusted


def get(settings: Settings, name: str, version: int | None = None, client=None) -> Version:
    """A version of a data set (default: the newest)."""
    found = versions(settings, name, client)
    if not found:
        raise DataSetError(f"data set '{name}' has no registered version (add one with `mlops data add {name} FILE`)")
    if version is None:
        return found[-1]
    for item in found:
        if item.version == version:
            return item
    listed = ", ".join(str(v.version) for v in found)
    raise DataSetError(f"data set '{name}' has no version {version} (versions: {listed})")


def check(settings: Settings, name: str, path: Path):
    """The contract's verdict on a file (a ValidationResult), with its HTML report written."""
    from ml_service.data.contract import validate_file
    from ml_service.data.report import write_report

    project = project_of(settings, name)
    if project.contract is None:
        raise DataSetError(f"model project '{project.project}' declares no contract for data set '{name}' in "
                           "mlops.yml: a version must be checked against one")
    result = validate_file(Path(path), project.contract, any_dialect=True)
    return result, write_report(result, settings.reports_dir)


def add(settings: Settings, name: str, path: Path, origin: str = "") -> Version:
    """Validate path against the data set's contract and register it as the next version.

    Raises DataRejected (nothing stored) when the file breaks the contract. Content that is already a
    version returns that version with new=False.
    """
    path = Path(path)
    if not path.is_file():
        raise DataSetError(f"{path}: data file not found")
    project = project_of(settings, name)
    result, report = check(settings, name, path)
    if not result.success:
        raise DataRejected(f"{result.summary()}\nreport: {report}\nnothing was stored: data set '{name}' "
                           "keeps its versions")
    from ml_service.data import dialect

    with tempfile.TemporaryDirectory(prefix="mlops-data-") as tmp:  # the version is kept as a standard CSV file
        _, standard = dialect.standard_file(path, Path(tmp))
        return _register(settings, name, project, result.rows, standard, origin or str(path.resolve()))


def _register(settings: Settings, name: str, project: ModelProject, rows: int, path: Path, origin: str) -> Version:
    """Store the checked standard CSV file at path as the next version of data set name (or find it stored)."""
    from mlflow.entities import Dataset, DatasetInput, RunStatus

    from ml_service.workspace import tracking
    from ml_service.workspace.datasets import dataset_input

    sha = sha256_of(path)
    client = _client(settings)
    with _lock(settings, name):
        existing = versions(settings, name, client)
        for item in existing:
            if item.sha256 == sha:
                return Version(**{**item.__dict__, "new": False})
        number = (existing[-1].version if existing else 0) + 1
        experiment_id = tracking.ensure_experiment(client, settings, EXPERIMENT)
        run = client.create_run(experiment_id, run_name=f"{name} v{number}", tags={
            KIND_TAG: "dataset", NAME_TAG: name, VERSION_TAG: str(number), DIGEST_TAG: sha,
            ROWS_TAG: str(rows), ORIGIN_TAG: origin})
        try:
            with tempfile.TemporaryDirectory() as tmp:
                copy = Path(tmp) / f"{name}-v{number}.csv"
                shutil.copyfile(path, copy)
                client.log_artifact(run.info.run_id, str(copy), ARTIFACT_DIR)
                entry, _ = dataset_input(copy, name, project.target or None, context="registry")
                stored = f"{run.info.artifact_uri.rstrip('/')}/{ARTIFACT_DIR}/{copy.name}"  # not the temp copy
                made = entry.dataset
                dataset = Dataset(name=made.name, digest=made.digest, source_type="artifact",
                                  source=json.dumps({"uri": stored}), schema=made.schema, profile=made.profile)
                tracking.log_inputs(client, run.info.run_id, [DatasetInput(dataset, tags=entry.tags)])
        except Exception:
            client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.FAILED))
            raise
        client.set_terminated(run.info.run_id, "FINISHED")
        return _version(client.get_run(run.info.run_id), new=True)


def materialize(settings: Settings, name: str, version: int | None = None) -> Path:
    """A version as a local file under .mlops/datasets/NAME/vN/ (downloaded from the workspace once,
    its sha256 checked)."""
    item = get(settings, name, version)
    folder = settings.state_dir / "datasets" / name / f"v{item.version}"
    target = folder / f"{name}-v{item.version}.csv"
    if target.is_file() and sha256_of(target) == item.sha256:
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        downloaded = Path(_client(settings).download_artifacts(item.run_id, f"{ARTIFACT_DIR}/{target.name}", tmp))
        if sha256_of(downloaded) != item.sha256:
            raise DataSetError(f"data set '{name}' v{item.version}: the stored file does not match its sha256")
        downloaded.replace(target)
    return target


def _newest_without_mlflow(settings: Settings, name: str):
    """(version, sha256) of the newest version, read through the run store's fast path, or None when there is
    none; NotImplemented when that cannot be known without MLflow (a server, a store the fast path does not
    know)."""
    from ml_service.workspace.run_store import no_store_yet, open_run_store

    if no_store_yet(settings):
        return None
    with open_run_store(settings) as store:
        if store.imports_mlflow:
            return NotImplemented
        experiment = store.find_experiment(EXPERIMENT)
        runs = store.finished_run_tags(experiment[0], {NAME_TAG: name}) if experiment else []
    found = sorted((int(tags[VERSION_TAG]), tags[DIGEST_TAG]) for tags in runs
                   if VERSION_TAG in tags and DIGEST_TAG in tags)
    return found[-1] if found else None


def data_path(settings: Settings, project: ModelProject) -> Path | None:
    """What `$data` is for a project: its data set's newest registered version, else mlops.yml's file.

    On the embedded store this is answered without importing MLflow when the newest version is already
    on this machine (a scheduled retrain with nothing new stays cheap)."""
    if not project.dataset:
        return project.data
    newest = _newest_without_mlflow(settings, project.dataset)
    if newest is None:
        return project.data
    if newest is not NotImplemented:
        number, sha = newest
        cached = settings.state_dir / "datasets" / project.dataset / f"v{number}" / f"{project.dataset}-v{number}.csv"
        if cached.is_file() and sha256_of(cached) == sha:
            return cached
    if versions(settings, project.dataset):
        return materialize(settings, project.dataset)
    return project.data


def trained_on(settings: Settings, item: Version, client=None) -> list[str]:
    """NAME:VERSION of every registered model version trained on this data set version (its tags)."""
    client = client or _client(settings)
    names = {m.name for m in projects_using(settings, item.name)}
    found = []
    for model in sorted(names):
        for mv in client.search_model_versions(f"name = '{model}'"):
            tags = mv.tags or {}
            if tags.get("dataset_name") == item.name and tags.get("dataset_digest") == item.digest:
                found.append((model, int(mv.version)))
    return [f"{model}:{version}" for model, version in sorted(found)]
