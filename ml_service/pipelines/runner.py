"""Run a pipeline: one parent MLflow run, one nested child run per step, step reuse.

Steps run in their own processes (see compute.py); only this runner writes to the tracking store,
except a step that registers a model. Outputs pass between steps through the artifact store: a
step's output folder is logged as the `outputs` artifact of its run and downloaded for the next.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ml_service import identity
from ml_service.config import Settings
from ml_service.errors import disk_full, disk_full_message
from ml_service.pipelines import reuse
from ml_service.pipelines.compute import ComputeError, get_compute
from ml_service.pipelines.definition import Input, Pipeline, PipelineError, Step
from ml_service.pipelines.watchdog import Watchdog
from ml_service.team import run_user
from ml_service.workspace import owners, registry, tracking
from ml_service.workspace.gitinfo import read_git_info
from ml_service.workspace.snapshot import write_snapshot
from ml_service.errors import MLOpsError

OUTPUTS = "outputs"
RESULT_FILE = "step_result.json"
EXECUTED_TAG = "mlops.step.executed"
REUSED_TAG = "mlops.step.reused_from"
OUTCOME_TAG = "mlops.outcome"
CREDENTIAL_VARIABLES = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN",
                        "MLOPS_RUN_USER",  # a step gets the run's, never the runner's
                        "MLOPS_TOKEN")  # a person's proof for approvals (ci/server/identity.py): never a step's


@dataclass
class StepRecord:
    """What happened to one step in this run."""

    name: str
    status: str = "pending"  # done | reused | skipped | failed
    run_id: str = ""
    source_run_id: str = ""  # the run whose outputs this step uses (itself, or the reused one)
    seconds: float = 0.0
    metrics: dict = field(default_factory=dict)
    values: dict = field(default_factory=dict)
    outcome: str = ""
    error: str = ""
    output_dir: Path | None = None
    output_digest: str = ""


@dataclass
class PipelineResult:
    """The pipeline run as a whole."""

    run_id: str
    status: str  # FINISHED | FAILED
    outcome: str
    steps: list[StepRecord]
    error: str = ""

    @property
    def ok(self) -> bool:
        """True when the pipeline finished (promoted or not)."""
        return self.status == "FINISHED"


class StepFailed(MLOpsError):
    """A step did not complete; the pipeline stops there."""


def run_pipeline(settings: Settings, pipeline: Pipeline, *, reuse_steps: bool = True,
                 report: Callable[[StepRecord], None] | None = None,
                 published: tuple[str, str] | None = None) -> PipelineResult:
    """Run every step of pipeline in order, recording everything in the workspace."""
    if reuse_steps:  # every step reusable: decided and recorded without importing MLflow
        result = _run_if_noop(settings, pipeline, report, published)
        if result is not None:
            return result
    watchdog = Watchdog()  # first, before any step process or thread exists
    workdir = tempfile.TemporaryDirectory(prefix="mlops-pipeline-")
    zygote = None
    try:
        if pipeline.preload:  # start importing on the other core while this process opens the store
            from ml_service.pipelines.zygote import Zygote

            zygote = Zygote(pipeline.preload, step_env(settings), settings.root, Path(workdir.name) / "zygote.log",
                            watchdog)
        return _run(settings, pipeline, reuse_steps, report, published, Path(workdir.name), zygote, watchdog)
    finally:
        if zygote is not None:
            zygote.close()
        watchdog.close()
        workdir.cleanup()


def _run_if_noop(settings, pipeline, report, published) -> PipelineResult | None:
    """The no-op run (noop.py) when the run store is the sqlite fast path; with MLflow the runner's own reuse
    decides as cheaply, so None."""
    from ml_service.workspace.run_store import open_run_store

    with open_run_store(settings) as store:
        if store.imports_mlflow:
            return None
        from ml_service.pipelines.noop import run_if_noop

        return run_if_noop(settings, pipeline, store, report, published)


def _run(settings, pipeline, reuse_steps, report, published, workdir, zygote, watchdog) -> PipelineResult:
    client = tracking.connect(settings)
    experiment_id = tracking.ensure_experiment(client, settings)
    git = read_git_info(settings.root)
    tags = parent_tags(settings, pipeline, git, published)
    parent = client.create_run(experiment_id, run_name=pipeline.name, tags=tags)
    parent_id = parent.info.run_id
    owners.end_orphans(client, [experiment_id], f"pipeline run {parent_id}")
    _log_params(client, parent_id, pipeline.params)

    runner = _Runner(settings, client, experiment_id, pipeline, parent_id, git, reuse_steps, report, workdir, zygote,
                     watchdog)
    try:
        runner.snapshot()
        # the steps act as a user of this run only (team server): created here, deleted however the run ends
        with run_user.for_run(settings, experiment_id, settings.model_name) as credential:
            runner.credential = credential
            runner.run_all()
    except (StepFailed, PipelineError, FileNotFoundError, registry.RegistryError, ComputeError,
            run_user.RunUserError) as exc:
        client.set_tag(parent_id, "mlops.error", str(exc)[:5000])
        client.set_terminated(parent_id, "FAILED")
        return PipelineResult(parent_id, "FAILED", "failed", runner.records, error=str(exc))
    except BaseException as exc:  # interrupted (Ctrl-C), a full disk or a bug: never leave the run RUNNING
        full = disk_full(exc)
        if full is not None:
            return _failed_on_full_disk(client, parent_id, runner.records, disk_full_message(full, settings.state_dir))
        client.set_tag(parent_id, "mlops.error", f"interrupted: {type(exc).__name__}: {exc}"[:5000])
        client.set_terminated(parent_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    outcome = runner.outcome()
    client.set_tag(parent_id, OUTCOME_TAG, outcome)
    client.set_terminated(parent_id, "FINISHED")
    return PipelineResult(parent_id, "FINISHED", outcome, runner.records)


def _failed_on_full_disk(client, parent_id: str, records, message: str) -> PipelineResult:
    """The run ends FAILED saying the disk is full, if the store can still take that much; if not, it stays RUNNING
    and the next run on this host ends it (owners.end_orphans), and the message says so."""
    try:
        client.set_tag(parent_id, "mlops.error", message[:5000])
        client.set_terminated(parent_id, "FAILED")
    except Exception as exc:
        if disk_full(exc) is None:
            raise
        message += " (the run could not be marked failed either: the next run ends it)"
    return PipelineResult(parent_id, "FAILED", "failed", records, error=message)


def parent_tags(settings: Settings, pipeline: Pipeline, git, published: tuple[str, str] | None) -> dict[str, str]:
    """The tags of a pipeline run's parent run."""
    tags = {
        "mlops.kind": "pipeline",
        "mlops.pipeline.name": pipeline.name,
        "mlops.model.project": settings.project,
        "mlops.model.name": settings.model_name,
        "mlops.pid": str(os.getpid()),
        owners.OWNER_TAG: owners.owner_tag(),
        "mlflow.source.name": pipeline.name,
        "mlflow.source.type": "PIPELINE",
        **git.tags(),
    }
    tags.update(identity.run_user_tags(settings))  # in team mode the server user, never a claimed name
    if published:
        tags["mlops.pipeline.published_version"] = published[1]
    if settings.build_id:
        tags["BuildId"] = settings.build_id
    if settings.build_uri:
        tags["BuildUri"] = settings.build_uri
    return tags


def _log_params(client, run_id: str, params: dict) -> None:
    from mlflow.entities import Param

    if params:
        client.log_batch(run_id, params=[Param(k, "" if v is None else str(v)) for k, v in params.items()])


class _Runner:
    def __init__(self, settings, client, experiment_id, pipeline, parent_id, git, reuse_steps, report, workdir,
                 zygote, watchdog):
        self.settings = settings
        self.client = client
        self.experiment_id = experiment_id
        self.pipeline = pipeline
        self.parent_id = parent_id
        self.git = git
        self.reuse_steps = reuse_steps
        self.report = report or (lambda record: None)
        self.records: list[StepRecord] = []
        self.datasets: dict[str, dict] = {}
        self.workdir = workdir
        self.zygote = zygote
        self.watchdog = watchdog
        self.credential: run_user.RunCredential | None = None  # the steps' server user (team workspace)

    def snapshot(self) -> None:
        path = self.workdir / "snapshot.zip"
        write_snapshot(self.settings.root, path, extra_ignores=[_relative_ignore(self.settings)])
        self.client.log_artifact(self.parent_id, str(path))

    def record(self, name: str) -> StepRecord | None:
        return next((r for r in self.records if r.name == name), None)

    def outcome(self) -> str:
        outcomes = [r.outcome for r in self.records if r.outcome and r.status != "skipped"]
        return outcomes[-1] if outcomes else "completed"

    def run_all(self) -> None:
        for step in self.pipeline.steps:
            record = StepRecord(step.name)
            self.records.append(record)
            self.report(record)  # status "pending": the step is about to start
            started = time.monotonic()
            try:
                if step.when and not self._condition(step.when):
                    record.status = "skipped"
                    self.client.set_tag(self.parent_id, f"mlops.step.{step.name}", "skipped")
                else:
                    self._run_step(step, record)
            finally:
                record.seconds = time.monotonic() - started
                if record.status == "pending":
                    record.status = "failed"
                self.report(record)

    def _condition(self, when: str) -> bool:
        step_name, key = when.split(".", 1)
        upstream = self.record(step_name)
        return bool(upstream and upstream.status in ("done", "reused") and upstream.values.get(key))

    def _run_step(self, step: Step, record: StepRecord) -> None:
        inputs, digests = self._materialize_inputs(step)
        params = tuned_params(self.pipeline, step, {k: self.pipeline.resolve(v) for k, v in step.params.items()},
                              self.records)
        key = reuse.step_key(step, self.pipeline, params, digests, self.settings.root)
        source = self._find_reusable(key) if (self.reuse_steps and step.reuse) else None
        tags = {**step_tags(self.parent_id, step, key, self.git), **identity.run_user_tags(self.settings)}
        child = self.client.create_run(self.experiment_id, run_name=step.name, tags=tags)
        record.run_id = child.info.run_id
        _log_params(self.client, record.run_id, params)
        self._log_datasets(step, inputs, record.run_id)

        out_dir = self.workdir / OUTPUTS / step.name
        if source is not None:
            self._reuse(source, record, out_dir)
        else:
            self._execute(step, record, inputs, params, out_dir)
        record.output_dir = out_dir
        record.output_digest = reuse.digest_path(out_dir)
        if record.status == "done":  # a later no-op run reads it instead of hashing the stored outputs
            self.client.set_tag(record.run_id, reuse.OUTPUT_DIGEST_TAG, record.output_digest)
        self.client.set_terminated(record.run_id, "FINISHED")

    def _materialize_inputs(self, step: Step) -> tuple[dict[str, Path], dict[str, str]]:
        inputs: dict[str, Path] = {}
        digests: dict[str, str] = {}
        for name, spec in step.inputs.items():
            if spec.kind == "path":
                path = self._path(spec)
                inputs[name], digests[name] = path, reuse.digest_path(path)
            elif spec.kind == "step":
                upstream = self.record(spec.value)
                if upstream is None or upstream.output_dir is None:
                    raise StepFailed(f"step '{step.name}' needs the outputs of '{spec.value}', which did not run")
                inputs[name], digests[name] = upstream.output_dir, upstream.output_digest
            else:
                path = self.workdir / "inputs" / step.name / f"{name}.json"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(alias_text(self._alias_info(spec.value)))
                inputs[name], digests[name] = path, reuse.digest_path(path)
        return inputs, digests

    def _path(self, spec: Input) -> Path:
        value = str(self.pipeline.resolve(spec.value))
        path = Path(value) if Path(value).is_absolute() else self.settings.root / value
        if not path.exists():
            raise FileNotFoundError(f"input file not found: {path}")
        return path

    def _alias_info(self, alias: str) -> dict:
        version = registry.get_alias(self.client, self.settings.model_name, alias)
        if version is None:  # which versions exist matters: a missing champion is not a first run
            return {"name": self.settings.model_name, "alias": alias, "version": None,
                    "existing": registry.versions_missing_a_champion(self.client, self.settings.model_name)
                    if alias == registry.CHAMPION else []}
        if self.credential is not None:  # checked here too, as the checkout's user: the step's run user may not ask
            from ml_service.workspace import provenance  # the server about the writer (provenance.check's last check)

            provenance.check(self.client, version, self.settings.experiment, self.settings.tracking_uri)
        return alias_document(version.name, alias, str(version.version), dict(version.tags))

    def _log_datasets(self, step: Step, inputs: dict[str, Path], run_id: str) -> None:
        specs = [(name, spec) for name, spec in step.inputs.items() if spec.kind == "path" and spec.dataset]
        if not specs:
            return
        from ml_service.workspace.datasets import dataset_input
        from ml_service.workspace.tracking import log_inputs

        entries = []
        for name, spec in specs:
            dataset, targets = self.pipeline.resolve(spec.dataset), self.pipeline.resolve(spec.targets)
            entry, info = dataset_input(inputs[name], str(dataset), str(targets or "") or None)
            entries.append(entry)
            if info["digest"] not in self.datasets:
                self.datasets[info["digest"]] = info
                log_inputs(self.client, self.parent_id, [entry])
        if entries:
            log_inputs(self.client, run_id, entries)

    def _find_reusable(self, key: str):
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{reuse.KEY_TAG}` = '{key}' and tags.`{EXECUTED_TAG}` = 'true' "
                          "and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        return runs[0] if runs else None

    def _reuse(self, source, record: StepRecord, out_dir: Path) -> None:
        from mlflow.entities import Metric

        record.status = "reused"
        record.source_run_id = source.info.run_id
        self.client.set_tag(record.run_id, REUSED_TAG, source.info.run_id)
        out_dir.mkdir(parents=True, exist_ok=True)
        self.client.download_artifacts(source.info.run_id, OUTPUTS, str(out_dir.parent))
        result = json.loads((out_dir.parent / OUTPUTS / RESULT_FILE).read_text()) \
            if (out_dir.parent / OUTPUTS / RESULT_FILE).exists() else {}
        self._move_downloaded(out_dir)
        record.metrics, record.values, record.outcome = result.get("metrics", {}), result.get("values", {}), \
            result.get("outcome", "")
        now = int(time.time() * 1000)
        if record.metrics:
            self.client.log_batch(record.run_id, metrics=[Metric(k, v, now, 0) for k, v in record.metrics.items()])

    def _move_downloaded(self, out_dir: Path) -> None:
        downloaded = out_dir.parent / OUTPUTS
        target = out_dir
        if target.exists():
            target.rmdir()
        downloaded.rename(target)
        (target / RESULT_FILE).unlink(missing_ok=True)

    def _execute(self, step: Step, record: StepRecord, inputs: dict[str, Path], params: dict,
                 out_dir: Path) -> None:
        from mlflow.entities import Metric

        step_dir = self.workdir / "steps" / step.name
        step_dir.mkdir(parents=True, exist_ok=True)
        out_dir.mkdir(parents=True, exist_ok=True)
        spec = {
            "function": step.function,
            "inputs": {k: str(v) for k, v in inputs.items()},
            "params": params,
            "output_dir": str(out_dir),
            "result_path": str(step_dir / "result.json"),
            "error_path": str(step_dir / "error.json"),
            "context": self._context(record),
        }
        (step_dir / "spec.json").write_text(json.dumps(spec))
        log_path = step_dir / "step.log"
        compute = get_compute(step.compute, self.zygote, self.settings, self.watchdog)
        outcome = compute.run(step_dir / "spec.json", step_env(self.settings, self.credential), self.settings.root,
                              log_path, step.timeout_minutes * 60, preloaded=bool(step.imports))
        if self.credential is not None:  # a step that printed its environment: the run's password is not kept
            mask_file(log_path, self.credential.password)
        self.client.log_artifact(record.run_id, str(log_path), "logs")
        if not outcome.ok:
            error = _error_message(step_dir / "error.json", log_path, outcome.describe())
            if self.credential is not None:
                error = error.replace(self.credential.password, "***")
            record.status, record.error = "failed", error
            self.client.set_tag(record.run_id, "mlops.step.error", error[:5000])
            self.client.set_terminated(record.run_id, "FAILED")
            raise StepFailed(f"step '{step.name}' failed: {error}")
        result = json.loads((step_dir / "result.json").read_text())
        record.status = "done"
        record.source_run_id = record.run_id
        record.metrics, record.values, record.outcome = (result.get("metrics", {}), result.get("values", {}),
                                                         result.get("outcome", ""))  # a step may return None
        now = int(time.time() * 1000)
        if record.metrics:
            self.client.log_batch(record.run_id, metrics=[Metric(k, float(v), now, 0)
                                                          for k, v in record.metrics.items()])
        (out_dir / RESULT_FILE).write_text(json.dumps(result))
        self.client.log_artifacts(record.run_id, str(out_dir), OUTPUTS)
        (out_dir / RESULT_FILE).unlink()
        self.client.set_tag(record.run_id, EXECUTED_TAG, "true")
        if record.outcome:
            self.client.set_tag(record.run_id, OUTCOME_TAG, record.outcome)

    def _context(self, record: StepRecord) -> dict:
        return {
            "tracking_uri": self.settings.tracking_uri,
            "experiment_name": self.settings.experiment,
            "model_name": self.settings.model_name,
            "project": self.settings.project,
            "task": self.settings.model.task,
            "target": str(self.pipeline.params.get("target") or self.settings.model.target),
            "state_dir": str(self.settings.state_dir),
            "pipeline": self.pipeline.name,
            "parent_run_id": self.parent_id,
            "run_id": record.run_id,
            "source_runs": {r.name: r.source_run_id for r in self.records if r.source_run_id},
            "datasets": list(self.datasets.values()),
            "git": {"commit": self.git.commit, "branch": self.git.branch, "dirty": self.git.dirty},
            "build_id": self.settings.build_id,
            "build_uri": self.settings.build_uri,
            "reports_dir": str(self.settings.reports_dir),
        }


def tuned_params(pipeline: Pipeline, step: Step, params: dict, records: list[StepRecord]) -> dict:
    """A step's params with tuning applied: a tune step is told its target (function and params); a tuned step
    gets its tune step's best values for the params it leaves unset (null), so an explicit --param still wins."""
    if step.tune:
        target = next(s for s in pipeline.steps if s.name == step.tune)
        return {**params, "target": {"step": target.name, "function": target.function,
                                     "params": {k: pipeline.resolve(v) for k, v in target.params.items()}}}
    tuner = next((s for s in pipeline.steps if s.tune == step.name), None)
    record = next((r for r in records if tuner is not None and r.name == tuner.name), None)
    if record is None or record.status not in ("done", "reused"):
        return params
    best = record.values.get("best_params") or {}
    return {**params, **{k: v for k, v in best.items() if params.get(k) is None}}


def step_tags(parent_id: str, step: Step, key: str, git) -> dict[str, str]:
    """The tags of a step's child run."""
    return {
        "mlflow.parentRunId": parent_id,
        "mlops.kind": "step",
        "mlops.step.name": step.name,
        "mlops.step.function": step.function,
        "mlops.step.compute": step.compute,
        reuse.KEY_TAG: key,
        owners.OWNER_TAG: owners.owner_tag(),
        **git.tags(),
    }


def alias_document(name: str, alias: str, version: str, tags: dict[str, str]) -> dict:
    """What an alias input holds when the alias is set (its digest is part of the step's reuse key)."""
    return {"name": name, "alias": alias, "version": version, "run_id": tags.get("run_id", ""), "tags": tags}


def alias_text(info: dict) -> str:
    """The file an alias input is written to."""
    return json.dumps(info, sort_keys=True)


def step_env(settings: Settings, credential: run_user.RunCredential | None = None) -> dict[str, str]:
    """The environment of a step process: ours, pinned to this workspace, no telemetry, acting on a team server as
    the run's user (credential) and never holding this checkout's server password."""
    env = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARIABLES}
    if settings.tracking_password:  # under any other name too (e.g. a variable a shell exported)
        env = {k: v for k, v in env.items() if settings.tracking_password not in v}
    env.update({
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "GX_ANALYTICS_ENABLED": "false",
        "MLOPS_ROOT": str(settings.root),
        "MLOPS_TRACKING_URI": settings.tracking_uri,
        "MLOPS_STATE_DIR": str(settings.state_dir),
        "MLOPS_ARTIFACT_ROOT": str(settings.artifact_root),
    })
    if settings.models:
        env["MLOPS_MODEL"] = settings.project
    if credential is not None:
        env.update(credential.env())
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def mask_file(path: Path, secret: str, chunk: int = 1 << 20) -> None:
    """Replace secret by *** in a file (a step's log) before it is kept anywhere; read in bounded chunks."""
    needle = secret.encode()
    if not needle or not path.is_file():
        return
    masked = path.with_name(path.name + ".masked")
    found = False
    with open(path, "rb") as source, open(masked, "wb") as target:
        carry = b""
        while block := source.read(chunk):
            data = carry + block
            found = found or needle in data
            data = data.replace(needle, b"***")
            keep = len(needle) - 1  # a secret split across two chunks is found in the next
            carry, data = (data[-keep:], data[:-keep]) if keep and len(data) > keep else (data, b"")
            target.write(data)
        target.write(carry)
    if found:
        masked.replace(path)
    else:
        masked.unlink()


def _error_message(error_path: Path, log_path: Path, how: str) -> str:
    if error_path.exists():
        error = json.loads(error_path.read_text())
        return f"{error['type']}: {error['message']}"
    tail = log_path.read_text(errors="replace").strip().splitlines()[-10:] if log_path.exists() else []
    return how + ("\n" + "\n".join(tail) if tail else "")


def _relative_ignore(settings: Settings) -> str:
    """An ignore line for the workspace state folder when it lives inside the project."""
    try:
        return settings.state_dir.relative_to(settings.root).as_posix() + "/"
    except ValueError:
        return ".mlops/"
