"""The no-op run: when every step can be reused, decide it and record the run without MLflow.

A scheduled retrain with nothing new should cost what the decision costs: hash the inputs, look the
reuse keys up, write the run. Importing MLflow alone takes 2-6 s on a loaded 2-core machine, so on
the embedded store this module decides with plain sqlite reads (the same reuse keys and the same
query as the runner) and records the parent run, one child run per step (tagged with the run it
reused, its metrics, its dataset inputs), the outcome and `snapshot.zip`, through the run store
(`workspace.run_store`) the runner opened: the runner asks only when that store is the sqlite fast
path (with MLflow, its own reuse decides at no extra cost). As soon as one step would run, or anything
is unusual (a missing input, a missing alias), it returns None and the normal runner takes over.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from ml_service import identity
from ml_service.config import Settings
from ml_service.pipelines import reuse
from ml_service.pipelines.definition import Pipeline, Step
from ml_service.workspace.run_store import RunRow, RunStore, local_path

RECORDER_TAG = "mlops.recorded_by"
SNAPSHOT_TAG = "mlops.snapshot.signature"  # the files of the snapshot with their sizes and modification times


def _now() -> int:
    return int(time.time() * 1000)


class _Plan:
    """Decides step after step whether the run is a no-op; None at the first step that is not."""

    def __init__(self, settings: Settings, pipeline: Pipeline, store: RunStore, experiment_id: str):
        self.settings, self.pipeline, self.store, self.experiment_id = settings, pipeline, store, experiment_id
        self.records: list = []
        self.rows: dict[str, RunRow] = {}

    def record(self, name: str):
        return next((r for r in self.records if r.name == name), None)

    def decide(self) -> bool:
        from ml_service.pipelines.runner import StepRecord

        for step in self.pipeline.steps:
            record = StepRecord(step.name)
            started = time.monotonic()
            if step.when and not self._condition(step.when):
                record.status = "skipped"
            elif not step.reuse or not self._reuse(step, record):
                return False
            record.seconds = time.monotonic() - started
            self.records.append(record)
        return True

    def _condition(self, when: str) -> bool:
        step_name, key = when.split(".", 1)
        upstream = self.record(step_name)
        return bool(upstream and upstream.status in ("done", "reused") and upstream.values.get(key))

    def _input_digests(self, step: Step) -> dict[str, str] | None:
        from ml_service.pipelines.runner import alias_document, alias_text

        digests = {}
        for name, spec in step.inputs.items():
            if spec.kind == "path":
                value = str(self.pipeline.resolve(spec.value))
                path = Path(value) if Path(value).is_absolute() else self.settings.root / value
                if not path.exists():
                    return None  # the runner reports it
                digests[name] = reuse.digest_path(path)
            elif spec.kind == "step":
                upstream = self.record(spec.value)
                if upstream is None or upstream.status != "reused":
                    return None
                digests[name] = upstream.output_digest
            else:
                held = self.store.alias(self.settings.model_name, spec.value)
                if held is None:  # a missing alias needs the registry's view: the runner's job
                    return None
                info = alias_document(self.settings.model_name, spec.value, held[0], held[1])
                digests[name] = reuse.digest_text(alias_text(info))
        return digests

    def _reuse(self, step: Step, record) -> bool:
        from ml_service.pipelines.runner import EXECUTED_TAG, RESULT_FILE

        digests = self._input_digests(step)
        if digests is None:
            return False
        from ml_service.pipelines.runner import tuned_params

        params = tuned_params(self.pipeline, step, {k: self.pipeline.resolve(v) for k, v in step.params.items()},
                              self.records)
        key = reuse.step_key(step, self.pipeline, params, digests, self.settings.root)
        found = self.store.find_run(self.experiment_id, {reuse.KEY_TAG: key, EXECUTED_TAG: "true"})
        if found is None:
            return False
        source, artifact_uri = found
        outputs = local_path(artifact_uri)
        if outputs is None:
            return False
        outputs = outputs / "outputs"
        result_file = outputs / RESULT_FILE
        result = json.loads(result_file.read_text()) if result_file.exists() else {}
        digest = self.store.run_tags(source).get(reuse.OUTPUT_DIGEST_TAG) or \
            reuse.digest_path(outputs, skip=(RESULT_FILE,))
        record.status, record.source_run_id, record.output_digest = "reused", source, digest
        record.metrics, record.values, record.outcome = (result.get("metrics", {}), result.get("values", {}),
                                                         result.get("outcome", ""))
        self.rows[step.name] = RunRow(
            step.name, {}, params={k: "" if v is None else str(v) for k, v in params.items()},
            metrics={k: float(v) for k, v in record.metrics.items()}, datasets=self._datasets(step))
        self.rows[step.name].tags["key"] = key
        return True

    def _datasets(self, step: Step) -> list[dict]:
        from ml_service.workspace.datasets import describe_csv

        found = []
        for spec in step.inputs.values():
            if spec.kind != "path" or not spec.dataset:
                continue
            value = str(self.pipeline.resolve(spec.value))
            path = Path(value) if Path(value).is_absolute() else self.settings.root / value
            facts = describe_csv(path)
            profile = {"num_rows": facts["rows"], "num_elements": facts["elements"]}
            targets = self.pipeline.resolve(spec.targets)
            if targets:
                profile["targets"] = str(targets)
            found.append({"name": str(self.pipeline.resolve(spec.dataset)), "digest": facts["digest"],
                          "source_type": "local", "source": json.dumps({"uri": str(path)}),
                          "schema": json.dumps(facts["schema"]), "profile": json.dumps(profile)})
        return found


def run_if_noop(settings: Settings, pipeline: Pipeline, store: RunStore, report: Callable | None,
                published: tuple[str, str] | None):
    """Record (in store) and return the PipelineResult of a run whose every step is reused; None when one is not."""
    return _run(settings, pipeline, report or (lambda record: None), published, store)


def _run(settings, pipeline, report, published, store):
    from ml_service.pipelines.runner import OUTCOME_TAG, REUSED_TAG, PipelineResult, parent_tags, step_tags
    from ml_service.workspace.gitinfo import read_git_info

    started = _now()
    experiment = store.find_experiment(settings.experiment)
    if experiment is None:
        return None
    experiment_id, location = experiment
    artifacts = local_path(location)
    plan = _Plan(settings, pipeline, store, experiment_id)
    if artifacts is None or not plan.decide():
        return None

    git = read_git_info(settings.root)
    tags = {**parent_tags(settings, pipeline, git, published), RECORDER_TAG: "light_store (every step reused)"}
    parent = RunRow(pipeline.name, tags, params={k: "" if v is None else str(v) for k, v in pipeline.params.items()},
                    start=started)
    rows, seen = [parent], set()
    for step, record in zip(pipeline.steps, plan.records):
        if record.status == "skipped":
            parent.tags[f"mlops.step.{step.name}"] = "skipped"
            continue
        row = plan.rows[step.name]
        key = row.tags.pop("key")
        row.tags = {**step_tags(parent.run_id, step, key, git), **identity.run_user_tags(settings),
                    REUSED_TAG: record.source_run_id}
        row.start, row.end = _now(), _now()
        record.run_id = row.run_id
        for dataset in row.datasets:
            if dataset["digest"] not in seen:
                seen.add(dataset["digest"])
                parent.datasets.append(dataset)
        rows.append(row)
    outcomes = [r.outcome for r in plan.records if r.outcome and r.status != "skipped"]
    outcome = outcomes[-1] if outcomes else "completed"
    parent.tags[OUTCOME_TAG] = outcome
    parent.tags[SNAPSHOT_TAG] = _snapshot(settings, store, experiment_id,
                                          artifacts / parent.run_id / "artifacts" / "snapshot.zip")
    parent.end = _now()
    for row in rows[1:]:
        row.end = min(row.end, parent.end)
    store.record(experiment_id, rows, f"pipeline run {parent.run_id}")
    for record in plan.records:
        report(record.__class__(record.name))  # "pending", as the runner reports a step about to start
        report(record)
    return PipelineResult(parent.run_id, "FINISHED", outcome, plan.records)


def _snapshot(settings: Settings, store: RunStore, experiment_id: str, dest: Path) -> str:
    """Write snapshot.zip to dest; when an earlier no-op run zipped the very same files (paths, sizes,
    modification times), link its zip instead of compressing the tree again. Returns the signature."""
    import hashlib
    import os
    import shutil

    from ml_service.pipelines.runner import _relative_ignore
    from ml_service.workspace.snapshot import snapshot_files, write_snapshot

    ignores = [_relative_ignore(settings)]
    h = hashlib.sha256()
    for rel in snapshot_files(settings.root, ignores):
        try:
            stat = (settings.root / rel).stat()
        except FileNotFoundError:
            continue
        h.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    signature = h.hexdigest()
    dest.parent.mkdir(parents=True, exist_ok=True)
    earlier = store.find_run(experiment_id, {SNAPSHOT_TAG: signature})
    source = local_path(earlier[1]) / "snapshot.zip" if earlier else None
    if source is not None and source.is_file():
        try:
            os.link(source, dest)
        except OSError:
            shutil.copyfile(source, dest)
    else:
        write_snapshot(settings.root, dest, extra_ignores=ignores)
    return signature
