"""`mlops monitor drift`: the inputs an environment's scoring service collected, against the training data
of the model version live there (the registry alias of the environment).

Where the training data comes from: the live version's `dataset_source` file when it is still there with
the same digest, else the data set version with that digest (the registry, ml_service/data/registry.py).
The reference predictions are the live version's predictions on that data. Every check is an MLflow run
of the experiment `mlops-monitoring` (metrics per column, the figures, the HTML report); a report is also
written under .mlops/reports. Above the thresholds, and when `monitor.retrain` is true (or --retrain),
the model project's retrain pipeline is queued.
"""
from __future__ import annotations

import json
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ml_service.config import Settings
from ml_service.errors import MLOpsError, UsageError
from ml_service.monitor import config as monitor_config
from ml_service.monitor.drift import DriftResult, compare
from ml_service.monitor.report import figure, safe_name, write_html

EXPERIMENT = "mlops-monitoring"
ENVIRONMENTS = ("qa", "production")


class MonitorError(UsageError):
    """Drift cannot be measured (no live version, no training data, too few collected rows)."""


@dataclass
class Outcome:
    """What one drift check found and wrote."""

    result: DriftResult
    model: str
    version: str
    environment: str
    report: Path
    run_id: str
    facts: dict = field(default_factory=dict)
    triggered: list[int] = field(default_factory=list)


def live_version(client, model: str, environment: str):
    """The model version the environment's alias points at."""
    from ml_service.workspace import registry

    if environment not in ENVIRONMENTS:
        raise MonitorError(f"--env {environment!r}: expected one of {', '.join(ENVIRONMENTS)}")
    version = registry.get_alias(client, model, environment)
    if version is None:
        raise MonitorError(f"no version of {model} is live in {environment} (the registry alias '{environment}' "
                           "is not set): deploy one first")
    return version


def training_data(settings: Settings, version) -> Path:
    """The file the version was trained on (its tags name it), checked by digest."""
    from ml_service.data import registry
    from ml_service.workspace.datasets import describe_csv

    tags = version.tags or {}
    source, digest, name = tags.get("dataset_source", ""), tags.get("dataset_digest", ""), tags.get("dataset_name")
    if source and Path(source).is_file() and describe_csv(Path(source))["digest"] == digest:
        return Path(source)
    if name:
        for item in registry.versions(settings, name):
            if item.digest == digest:
                return registry.materialize(settings, name, item.version)
    raise MonitorError(f"{version.name} v{version.version}: its training data ({source or 'not recorded'}, digest "
                       f"{digest or '?'}) is neither on this machine nor a version of the data set registry")


def _clean(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def as_signature_types(model, frame):
    """frame with whole-number columns as floats where the model's signature says double or float (MLflow
    refuses int64 -> double; a model recorded with double columns then still predicts on its CSV file)."""
    import pandas as pd
    from mlflow.types import DataType

    schema = model.metadata.get_input_schema()
    if schema is None or schema.is_tensor_spec():
        return frame
    floats = [spec.name for spec in schema.inputs if spec.name in frame.columns
              and spec.type in (DataType.double, DataType.float) and pd.api.types.is_integer_dtype(frame[spec.name])]
    return frame.astype({name: "float64" for name in floats}) if floats else frame


def reference_predictions(settings: Settings, version, frame) -> list:
    """The live version's predictions on its training features (empty when it cannot be loaded as a pyfunc)."""
    import mlflow

    from ml_service.workspace import provenance

    provenance.check(mlflow.MlflowClient(), version, settings.for_registered(version.name).experiment,
                     settings.tracking_uri)  # never unpickle an untraced version: refused, not skipped
    try:
        model = mlflow.pyfunc.load_model(f"models:/{version.name}/{version.version}")
        predicted = model.predict(as_signature_types(model, frame))
    except Exception as exc:  # a model without a pyfunc flavor: no prediction drift, said in the report
        reason = " ".join(str(exc).split())  # the whole reason, on one line (a frame's repr spans many)
        print(f"note: no reference predictions ({type(exc).__name__}: {reason})")
        return []
    values = predicted.tolist() if hasattr(predicted, "tolist") else list(predicted)
    return [v[0] if isinstance(v, list) and len(v) == 1 else v for v in values]


def measure(settings: Settings, model: str, environment: str, window: str | None = None,
            collected_dir: Path | None = None, now: float | None = None, since: float | None = None) -> Outcome:
    """Compare what was collected over the window with the live version's training data; record the check."""
    import pandas as pd

    from ml_service.data import collected
    from ml_service.workspace import tracking

    settings = settings.for_registered(model)
    config = monitor_config.load(settings)
    window = window or config.window
    seconds = monitor_config.window_seconds(window)
    now = time.time() if now is None else now
    client = tracking.connect(settings)
    version = live_version(client, model, environment)
    source = collected_dir or config.collected(settings, environment, model)
    if since is not None:
        window = f"since {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(since))}"
    else:
        since = None if seconds is None else now - seconds
    rows = collected.read(source, since=since, until=now,
                          model_version=str(version.version))
    if len(rows.rows) < config.min_rows:
        raise MonitorError(f"{source}: {len(rows.rows)} row(s) served by v{version.version} collected in the last "
                           f"{window}, fewer than "
                           f"monitor.min_rows ({config.min_rows}): no verdict")
    data = training_data(settings, version)
    frame = pd.read_csv(data)
    target = settings.model.target
    features = [c for c in frame.columns if c != target]
    reference = {c: [_clean(v) for v in frame[c].tolist()] for c in features}
    predicted = reference_predictions(settings, version, frame[features])
    result = compare(features, reference, rows.rows, predicted, rows.predictions, config.psi, config.p_value)
    facts = {"model": f"{model} v{version.version}", "environment": environment, "window": window,
             "collected": f"{len(rows.rows)} rows from {source}", "training data": f"{len(frame)} rows of {data}",
             "thresholds": f"PSI > {config.psi} and p-value < {config.p_value}",
             "checked": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(now))}
    outcome = Outcome(result, model, str(version.version), environment, Path(), "", facts)
    _record(settings, client, outcome, reference, rows, features, predicted)
    return outcome


def _record(settings: Settings, client, outcome: Outcome, reference: dict, rows, features: list[str],
            predicted: list) -> None:
    """The MLflow run (metrics, figures, report) and the report under .mlops/reports."""
    from mlflow.entities import Metric, Param, RunTag

    from ml_service.workspace import tracking

    result = outcome.result
    experiment_id = tracking.ensure_experiment(client, settings, EXPERIMENT)
    run = client.create_run(experiment_id, run_name=f"drift {outcome.model} {outcome.environment}", tags={
        "mlops.kind": "drift", "mlops.model.name": outcome.model, "mlops.model.version": outcome.version,
        "mlops.environment": outcome.environment, "drift": str(result.drifted).lower()})
    outcome.run_id = run.info.run_id
    stamp = int(time.time() * 1000)
    metrics = [Metric("drifted_features", len(result.drifted_features), stamp, 0),
               Metric("collected_rows", result.current_rows, stamp, 0)]
    columns = list(result.features) + ([result.prediction] if result.prediction else [])
    for column in columns:
        name = safe_name(column.name)
        metrics += [Metric(f"psi.{name}", column.psi, stamp, 0), Metric(f"p_value.{name}", column.p_value, stamp, 0)]
    client.log_batch(run.info.run_id, metrics=metrics, params=[
        Param("window", str(outcome.facts["window"])), Param("environment", outcome.environment),
        Param("model_version", outcome.version)], tags=[RunTag("drifted_features", ",".join(result.drifted_features))])
    stamp_text = time.strftime("%Y%m%d-%H%M%S")
    reports = settings.reports_dir
    reports.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "figures"
        folder.mkdir()
        samples = {name: ([v for v in reference[name] if v is not None],
                          [row[i] for row in rows.rows if len(row) > i]) for i, name in enumerate(features)}
        figures = {c.name: figure(c, *samples[c.name], folder / f"{safe_name(c.name)}.png") for c in result.features}
        if result.prediction is not None:
            figures["prediction"] = figure(result.prediction, predicted,
                                           [p for p in rows.predictions if p is not None], folder / "prediction.png")
        outcome.facts["mlflow run"] = run.info.run_id
        report = write_html(result, outcome.facts, figures, Path(tmp) / "drift_report.html")
        (Path(tmp) / "drift.json").write_text(json.dumps(
            {"drifted": result.drifted, "drifted_features": result.drifted_features,
             "columns": [c.__dict__ for c in columns], **{k: str(v) for k, v in outcome.facts.items()}}, indent=1))
        client.log_artifacts(run.info.run_id, tmp)
        outcome.report = reports / f"drift_{safe_name(outcome.model)}_{outcome.environment}_{stamp_text}.html"
        outcome.report.write_text(report.read_text())
    client.set_terminated(run.info.run_id, "FINISHED")


def trigger_retrain(settings: Settings, model: str) -> list[int]:
    """Queue the model project's retrain pipeline (Build.Reason ResourceTrigger: an alert, not a person)."""
    from ml_service.ci.server import service
    from ml_service.ci.scaffold import pipeline_name

    settings = settings.for_registered(model)
    try:
        file = service.resolve_file(settings, pipeline_name(settings.project, "retrain"))
    except MLOpsError as exc:
        raise MonitorError(f"drift found, but the retrain pipeline cannot be queued: {exc}") from None
    store = service.open_store(settings)
    return [service.queue(settings, store, file, "ResourceTrigger")]
