"""Drift checks (monitor/check.py, `mlops monitor drift`): end to end on real parts (a model trained and registered
by the real pipeline, served by the real scoring service with data collection on, traffic over HTTP); then in
process, against a real MLflow store: only the live version's traffic counts, the minimum sample, the window,
the training data's digest, exit 4 on drift, --no-retrain over monitor.retrain, the retrain queued."""
from __future__ import annotations

import csv
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from ml_service.deploy.smoke import wait_ready
from ml_service.monitor import check
from ml_service.workspace import tracking
from tests.conftest import ROOT
from tests.support.cli import mlops
from tests.support.registered import register_folder
from tests.support.serving_process import free_port

pytestmark = pytest.mark.integration


def feature_rows(settings):
    """The training rows' features (rows with a missing value left out), and which columns are numbers."""
    with open(settings.model.data, newline="") as handle:
        reader = csv.DictReader(handle)
        features = [c for c in reader.fieldnames if c != settings.model.target]
        rows = [[r[c] for c in features] for r in reader if all(r[c] != "" for c in features)]
    numeric = []
    for index in range(len(features)):
        try:
            [float(r[index]) for r in rows]
            numeric.append(True)
        except ValueError:
            numeric.append(False)
    return [[float(v) if numeric[i] else v for i, v in enumerate(r)] for r in rows], numeric


def send(settings, collect_dir, rows):
    """Serve the qa version with collection into collect_dir and post rows in batches of 20."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ml_service.cli", "serve", "--model",
                             f"models:/{settings.model.name}@qa", "--port", str(port)], cwd=ROOT,
                            env={**os.environ, "MLOPS_COLLECT_DIR": str(collect_dir)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(f"http://127.0.0.1:{port}", 90)
        for start in range(0, len(rows), 20):
            body = json.dumps({"data": rows[start:start + 20]}).encode()
            request = urllib.request.Request(f"http://127.0.0.1:{port}/score", data=body,
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as response:
                assert response.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)  # a clean stop flushes what was collected
        proc.wait(60)


def test_shifted_traffic_is_flagged_and_unshifted_traffic_is_not(workspace, tmp_path):
    trained = mlops("pipeline", "run")
    assert trained.returncode == 0, trained.stdout + trained.stderr
    client = tracking.connect(workspace)
    client.set_registered_model_alias(workspace.model.name, "qa", "1")  # what `mlops deploy qa` moves

    rows, numeric = feature_rows(workspace)
    rng = random.Random(13)
    steady = [rng.choice(rows) for _ in range(300)]
    spread = [math.sqrt(sum((r[i] - sum(x[i] for x in rows) / len(rows)) ** 2 for r in rows) / len(rows))
              if numeric[i] else 0 for i in range(len(numeric))]
    shifted = [[v + 2 * spread[i] if numeric[i] else v for i, v in enumerate(r)] for r in steady]

    send(workspace, tmp_path / "steady", steady)
    calm = mlops("monitor", "drift", "--env", "qa", "--window", "1h", "--collected", str(tmp_path / "steady"))
    assert calm.returncode == 0, calm.stdout + calm.stderr
    assert "no drift" in calm.stdout and "DRIFT" not in calm.stdout

    default_dir = workspace.state_dir / "collected" / "qa" / workspace.model.name  # monitor.collect_dir
    send(workspace, default_dir, shifted)
    alarm = mlops("monitor", "drift", "--model", workspace.model.name, "--env", "qa", "--no-retrain")
    assert alarm.returncode == 4, alarm.stdout + alarm.stderr
    assert "DRIFT:" in alarm.stdout
    report = next(line.split(": ", 1)[1] for line in alarm.stdout.splitlines() if line.startswith("report: "))
    assert "DRIFT DETECTED" in open(report).read()

    runs = client.search_runs([client.get_experiment_by_name(check.EXPERIMENT).experiment_id],
                              order_by=["attributes.start_time ASC"])
    assert [r.data.tags["drift"] for r in runs] == ["false", "true"]
    shifted_run = runs[1]
    assert shifted_run.data.metrics["drifted_features"] == sum(numeric)
    assert shifted_run.data.metrics["collected_rows"] == 300
    artifacts = {a.path for a in client.list_artifacts(shifted_run.info.run_id)}
    assert {"drift_report.html", "drift.json", "figures"} <= artifacts

    nothing = mlops("monitor", "drift", "--env", "production")
    assert nothing.returncode == 2 and "is not set" in nothing.stderr and "Traceback" not in nothing.stderr


def test_drift_queues_the_retrain_pipeline_of_the_models_project(workspace):
    from ml_service.ci.server import service
    from ml_service.monitor import check

    [run_id] = check.trigger_retrain(workspace, workspace.model.name)
    run = service.open_store(workspace).get_run(run_id)
    assert (run.pipeline, run.reason, run.status) == (f"{workspace.model.project}-retrain", "ResourceTrigger", "queued")


# --- in process: which rows count, the minimum sample, the window, the training data's digest, exit 4 ----------
#
# A workspace of its own (mlops.yml in a temp root: project alpha, registered model alpha_model) with a real
# MLflow sqlite store; two registered versions of a real scikit-learn regression on two columns, trained on a
# CSV whose path and digest are the versions' tags; collected records written as the scoring service writes
# them (predictions-*.jsonl); `measure` and `mlops monitor drift` run in this process.

NOW = 1_900_000_000.0
MIN_ROWS = 20
FEATURES = ["a", "b"]


def write_config(root, **monitor) -> None:
    section = {"min_rows": MIN_ROWS, "window": "24h", **monitor}
    text = "models:\n  - {project: alpha, name: alpha_model, target: y}\nmonitor: {%s}\n" % ", ".join(
        f"{key}: {json.dumps(value)}" for key, value in section.items())
    (root / "mlops.yml").write_text(text)


def save_model(path, frame):
    """A linear regression on a (double) and b (long), saved as an MLflow sklearn model with its signature."""
    import pickle

    from sklearn.linear_model import LinearRegression

    from tests.support.rows_score import mlmodel

    path.mkdir(parents=True)
    model = LinearRegression().fit(frame[FEATURES], frame["y"])
    (path / "model.pkl").write_bytes(pickle.dumps(model))
    (path / "MLmodel").write_text(mlmodel([{"type": "double", "name": "a"}, {"type": "long", "name": "b"}]))
    return path


@pytest.fixture(scope="module")
def alpha(tmp_path_factory):
    """(settings, training rows, client) with versions 1 and 2 of alpha_model; qa: version 1."""
    import numpy as np
    import pandas as pd

    from ml_service.workspace.datasets import describe_csv
    from tests.conftest import fresh_store

    root = tmp_path_factory.mktemp("alpha")
    write_config(root)
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"a": rng.normal(10, 2, 400), "b": rng.integers(0, 50, 400)})
    frame["y"] = 2 * frame["a"] + 3 * frame["b"] + 1
    frame.to_csv(root / "train.csv", index=False)
    env = {"MLOPS_ROOT": str(root), "MLOPS_STATE_DIR": str(root / ".mlops"), "MLFLOW_DISABLE_TELEMETRY": "true"}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        for key in ("MLOPS_TRACKING_URI", "MLOPS_ARTIFACT_ROOT", "MLOPS_MODEL", "MLOPS_MODEL_NAME", "MLOPS_EXPERIMENT"):
            patch.delenv(key, raising=False)
        from ml_service.config import load_settings

        settings = load_settings()
        settings.state_dir.mkdir(parents=True)
        fresh_store(settings.state_dir / "mlflow.db")
        client = tracking.connect(settings)
        tags = {"dataset_source": str(root / "train.csv"), "dataset_digest": describe_csv(root / "train.csv")["digest"]}
        location = (settings.artifact_root / settings.experiment).as_uri()
        for n in (1, 2):
            register_folder(client, "alpha_model", save_model(root / f"model-{n}", frame), settings.experiment, tags,
                            artifact_location=location)
        client.set_registered_model_alias("alpha_model", "qa", "1")
        yield settings, frame, client


def collect(folder, rows, version: str, stamp: float = NOW - 60, shift: float = 0.0, request: str = "r") -> None:
    """Write rows as the scoring service collects them (one request), served by version at stamp; shift moves a."""
    folder.mkdir(parents=True, exist_ok=True)
    inputs = [[float(a) + shift, int(b)] for a, b in rows]
    record = {"time": stamp, "request_id": f"{request}-{stamp}-{version}", "model_version": version,
              "inputs": inputs, "predictions": [2 * a + 3 * b + 1 for a, b in inputs]}
    with open(folder / f"predictions-{request}.jsonl", "a") as handle:
        handle.write(json.dumps(record) + "\n")


def steady(frame, n: int, seed: int = 1) -> list:
    return frame[FEATURES].sample(n, random_state=seed).to_numpy().tolist()


def test_only_the_traffic_of_the_version_live_in_the_environment_counts(alpha, tmp_path):
    settings, frame, client = alpha
    folder = tmp_path / "collected"
    collect(folder, steady(frame, 60), "1", request="v1")
    collect(folder, steady(frame, 300, seed=2), "2", shift=8.0, request="v2")  # the other version's, drifted
    calm = check.measure(settings, "alpha_model", "qa", collected_dir=folder, now=NOW)
    assert (calm.version, calm.result.current_rows, calm.result.drifted) == ("1", 60, False)
    assert client.get_run(calm.run_id).data.metrics["collected_rows"] == 60
    client.set_registered_model_alias("alpha_model", "qa", "2")
    try:
        alarm = check.measure(settings, "alpha_model", "qa", collected_dir=folder, now=NOW)
    finally:
        client.set_registered_model_alias("alpha_model", "qa", "1")
    assert (alarm.version, alarm.result.current_rows, alarm.result.drifted) == ("2", 300, True)
    assert client.get_run(alarm.run_id).data.tags["drift"] == "true"


def test_rows_of_other_versions_do_not_make_up_the_minimum_sample(alpha, tmp_path):
    settings, frame, _ = alpha
    folder = tmp_path / "collected"
    collect(folder, steady(frame, MIN_ROWS - 1), "1", request="v1")
    collect(folder, steady(frame, 100, seed=2), "2", request="v2")
    with pytest.raises(check.MonitorError) as error:
        check.measure(settings, "alpha_model", "qa", collected_dir=folder, now=NOW)
    assert f"{MIN_ROWS - 1} row(s) served by v1" in str(error.value)


@pytest.mark.parametrize("rows, verdict", [(MIN_ROWS, True), (MIN_ROWS - 1, False)])
def test_a_verdict_needs_at_least_min_rows_collected_rows(alpha, tmp_path, rows, verdict):
    settings, frame, _ = alpha
    collect(tmp_path / "collected", steady(frame, rows), "1")
    if verdict:
        outcome = check.measure(settings, "alpha_model", "qa", collected_dir=tmp_path / "collected", now=NOW)
        assert outcome.result.current_rows == rows
    else:
        with pytest.raises(check.MonitorError, match=f"fewer than monitor.min_rows \\({MIN_ROWS}\\): no verdict"):
            check.measure(settings, "alpha_model", "qa", collected_dir=tmp_path / "collected", now=NOW)


def test_the_window_counts_rows_collected_within_it_and_none_older(alpha, tmp_path):
    settings, frame, _ = alpha
    folder = tmp_path / "collected"
    collect(folder, steady(frame, MIN_ROWS), "1", stamp=NOW - 3600, request="edge")  # at the window's start
    collect(folder, steady(frame, 7, seed=3), "1", stamp=NOW - 3600.5, request="older")
    collect(folder, steady(frame, 9, seed=4), "1", stamp=NOW - 86_400 * 3, request="days")
    collect(folder, steady(frame, 5, seed=5), "1", stamp=NOW + 1, request="later")  # after the check: not yet
    counted = {window: check.measure(settings, "alpha_model", "qa", window, folder, now=NOW).result.current_rows
               for window in ("1h", "2h", "3d", "all")}
    assert counted == {"1h": MIN_ROWS, "2h": MIN_ROWS + 7, "3d": MIN_ROWS + 16, "all": MIN_ROWS + 16}
    since = check.measure(settings, "alpha_model", "qa", "1h", folder, now=NOW, since=NOW - 3600.5)
    assert since.result.current_rows == MIN_ROWS + 7 and since.facts["window"].startswith("since ")


def test_a_training_file_changed_since_the_version_was_trained_is_not_used(alpha, tmp_path):
    settings, frame, client = alpha
    collect(tmp_path / "collected", steady(frame, MIN_ROWS), "1")
    train = settings.root / "train.csv"
    original = train.read_bytes()
    assert check.measure(settings, "alpha_model", "qa", collected_dir=tmp_path / "collected", now=NOW).result
    train.write_bytes(original[:-200] + original[-200:].replace(b"1", b"2"))  # the same size, other values
    try:
        with pytest.raises(check.MonitorError, match="its training data .* is neither on this machine nor a version"):
            check.measure(settings, "alpha_model", "qa", collected_dir=tmp_path / "collected", now=NOW)
    finally:
        train.write_bytes(original)


def drift_command(*args: str) -> int:
    from ml_service.cli import main

    return main(["monitor", "drift", "--env", "qa", "--window", "1h", *args])


def test_the_command_exits_4_on_drift_and_0_without(alpha, tmp_path, capsys):
    settings, frame, _ = alpha
    now = time.time() - 60
    collect(tmp_path / "calm", steady(frame, 60), "1", stamp=now)
    collect(tmp_path / "shifted", steady(frame, 60), "1", stamp=now, shift=8.0)
    assert drift_command("--collected", str(tmp_path / "calm")) == 0
    assert drift_command("--collected", str(tmp_path / "shifted")) == 4
    assert drift_command("--collected", str(tmp_path / "no-such-folder")) == 2


def test_drift_of_the_predictions_alone_exits_4(alpha, tmp_path):
    """Inputs like the training data, predictions that are not (a served model that is not the registered one)."""
    settings, frame, _ = alpha
    folder = tmp_path / "collected"
    collect(folder, steady(frame, 80), "1", stamp=time.time() - 60)
    record = json.loads((folder / "predictions-r.jsonl").read_text())
    record["predictions"] = [p + 500.0 for p in record["predictions"]]
    (folder / "predictions-r.jsonl").write_text(json.dumps(record) + "\n")
    outcome = check.measure(settings, "alpha_model", "qa", "1h", folder)
    assert not outcome.result.drifted_features and outcome.result.prediction.drifted and outcome.result.drifted
    assert drift_command("--collected", str(folder), "--no-retrain") == 4


def test_no_retrain_on_the_command_line_wins_over_monitor_retrain_and_retrain_over_its_absence(
        alpha, tmp_path, capsys):
    from ml_service.ci.server.service import open_store

    settings, frame, _ = alpha
    collect(tmp_path / "shifted", steady(frame, 60), "1", stamp=time.time() - 60, shift=8.0)
    queued = len(open_store(settings).list_runs())
    write_config(settings.root, retrain=True)
    try:
        assert drift_command("--collected", str(tmp_path / "shifted"), "--no-retrain") == 4
        assert len(open_store(settings).list_runs()) == queued  # nothing queued
        capsys.readouterr()
        # monitor.retrain true, or --retrain: the retrain is asked for (project alpha has no retrain pipeline)
        assert drift_command("--collected", str(tmp_path / "shifted")) == 2
        assert "drift found, but the retrain pipeline cannot be queued" in capsys.readouterr().err
        write_config(settings.root, retrain=False)
        assert drift_command("--collected", str(tmp_path / "shifted")) == 4
        assert drift_command("--collected", str(tmp_path / "shifted"), "--retrain") == 2
    finally:
        write_config(settings.root)


def test_the_drift_metrics_are_stamped_in_milliseconds_at_the_check(alpha, tmp_path):
    """MLflow metric timestamps are milliseconds: a drift check's metrics sit inside its own run's time span
    (seconds, or seconds / 1000, would put them in January 1970 in every chart)."""
    settings, frame, client = alpha
    collect(tmp_path / "collected", steady(frame, 60), "1")
    outcome = check.measure(settings, "alpha_model", "qa", collected_dir=tmp_path / "collected", now=NOW)
    run = client.get_run(outcome.run_id)
    history = client.get_metric_history(outcome.run_id, "collected_rows")
    assert [m.value for m in history] == [60]
    assert history[0].timestamp >= run.info.start_time


def test_without_its_file_the_training_data_is_the_registry_version_with_the_versions_digest(alpha, tmp_path):
    """The file a model version was trained on is gone: its reference data is the data set version whose digest
    the model version's tags name, never another version of the data set; no such version is an error."""
    from types import SimpleNamespace

    from ml_service.data import registry

    settings, _, client = alpha
    name = "alpha_reference"
    experiment = tracking.ensure_experiment(client, settings, registry.EXPERIMENT)
    files = {}
    for number in (1, 2, 3):
        files[number] = settings.state_dir / "datasets" / name / f"v{number}" / f"{name}-v{number}.csv"
        files[number].parent.mkdir(parents=True, exist_ok=True)
        files[number].write_text(f"a,b,y\n{number},1,2\n")
        run = client.create_run(experiment, tags={
            registry.KIND_TAG: "dataset", registry.NAME_TAG: name, registry.VERSION_TAG: str(number),
            registry.DIGEST_TAG: registry.sha256_of(files[number]), registry.ROWS_TAG: "1"})
        client.set_terminated(run.info.run_id, "FINISHED")

    def trained_on(digest):
        return SimpleNamespace(name="alpha_model", version="9", tags={
            "dataset_source": str(tmp_path / "gone.csv"), "dataset_name": name, "dataset_digest": digest})

    for number in (1, 2, 3):
        assert check.training_data(settings, trained_on(registry.sha256_of(files[number])[:8])) == files[number]
    with pytest.raises(check.MonitorError, match="is neither on this machine nor a version of the data set registry"):
        check.training_data(settings, trained_on("00000000"))


def test_retrain_on_drift_queues_the_retrain_pipeline_and_runs_it_to_its_end(alpha, tmp_path):
    """`--retrain` is queue *and* run (cli/monitor.py): the run of alpha-retrain exists, was triggered by the
    drift (ResourceTrigger), ran its step (the file the step writes) and finished succeeded."""
    settings, frame, _ = alpha
    run = retrain_run(settings, frame, tmp_path, "--retrain")
    assert (run.pipeline, run.reason) == ("alpha-retrain", "ResourceTrigger")
    assert (run.status, run.result) == ("completed", "succeeded")
    assert (tmp_path / "retrained").read_text().strip() == "retrained"


def retrain_run(settings, frame, tmp_path, *options):
    """The CI run a drift check with options started (None: none), alpha having a retrain pipeline whose one step
    writes tmp_path/retrained."""
    from ml_service.ci.server.service import open_store

    collect(tmp_path / "shifted", steady(frame, 60), "1", stamp=time.time() - 60, shift=8.0)
    pipeline = settings.root / ".pipelines" / "alpha-retrain.yml"
    pipeline.parent.mkdir()
    pipeline.write_text(f"trigger: none\nsteps:\n- script: echo retrained > '{tmp_path / 'retrained'}'\n"
                        "  displayName: retrain\n")
    store = open_store(settings)
    before = {run.id for run in store.list_runs()}
    try:
        assert drift_command("--collected", str(tmp_path / "shifted"), *options) == 4
    finally:
        pipeline.unlink()
        pipeline.parent.rmdir()
    started = [run for run in store.list_runs() if run.id not in before]
    assert len(started) <= 1
    return started[0] if started else None


@pytest.mark.parametrize("own, retrains", [(True, True), (False, False)])
def test_the_drifting_models_own_project_decides_the_retrain_not_the_selected_one(alpha, tmp_path, own, retrains):
    """monitor.retrain is read for the project of the model checked (cli/monitor.py: for_registered), not for the
    default project: alpha's own monitor: says retrain (or not) while the first project of mlops.yml, beta, says the
    opposite."""
    settings, frame, _ = alpha
    text = ("models:\n  - {project: beta, name: beta_model, target: y, monitor: {retrain: %s}}\n"
            "  - {project: alpha, name: alpha_model, target: y, monitor: {retrain: %s}}\n"
            "monitor: {min_rows: %d, window: 24h}\n" % (str(not own).lower(), str(own).lower(), MIN_ROWS))
    (settings.root / "mlops.yml").write_text(text)
    try:
        run = retrain_run(settings, frame, tmp_path, "--model", "alpha_model")
    finally:
        write_config(settings.root)
    assert (run is not None) is retrains
    assert (tmp_path / "retrained").exists() is retrains
