"""`mlops monitor drift` end to end on real parts: a model trained and registered by the real pipeline, served by
the real scoring service (`mlops serve`) with data collection on, traffic over HTTP, a real MLflow store."""
from __future__ import annotations

import csv
import json
import math
import os
import random
import signal
import subprocess
import sys
import urllib.request

import pytest

from ml_service.deploy.smoke import wait_ready
from ml_service.monitor import check
from ml_service.workspace import tracking
from tests.conftest import ROOT
from tests.support.serving_process import free_port

pytestmark = pytest.mark.integration


def mlops(*args, env=None):
    return subprocess.run([sys.executable, "-m", "ml_service.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=900, env={**os.environ, **(env or {})})


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
