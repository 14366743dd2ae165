"""Runs that record the same dataset at the same moment all record it (found by CI: 4 retrains at once).

MLflow's SQL store looks a dataset up and then inserts it, so two writers can both miss it and the
second insert breaks the unique key. Real processes released together on a real sqlite store.
"""
from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from tests.conftest import ROOT, fresh_store

pytestmark = pytest.mark.integration

WRITERS = 6

WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path

    import mlflow
    from ml_service.workspace.datasets import dataset_input
    from ml_service.workspace.tracking import log_inputs

    uri, csv, go, ready = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("race")
    run = client.create_run(experiment.experiment_id)
    entry, _ = dataset_input(csv, "table")
    ready.touch()
    while not go.exists():
        time.sleep(0.001)
    log_inputs(client, run.info.run_id, [entry])
    print(run.info.run_id)
""")


def test_writers_recording_one_dataset_together_all_succeed_and_share_one_row(tmp_path):
    import mlflow

    uri = fresh_store(tmp_path / "mlflow.db")
    mlflow.MlflowClient(tracking_uri=uri).create_experiment("race")
    csv = tmp_path / "table.csv"
    csv.write_text("a,b\n1,2\n3,4\n")
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{n}" for n in range(WRITERS)]
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, uri, str(csv), str(go), str(flag)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for flag in ready]
    deadline = time.monotonic() + 120
    while not all(flag.exists() for flag in ready):  # every writer has imported MLflow and created its run
        assert time.monotonic() < deadline and all(proc.poll() is None for proc in procs)
        time.sleep(0.05)
    with sqlite3.connect(tmp_path / "mlflow.db", isolation_level=None) as hold:
        hold.execute("begin immediate")  # they may read, none may write: all look the dataset up, none inserts
        go.touch()
        time.sleep(2)
        hold.execute("commit")
    results = [proc.communicate(timeout=120) + (proc.returncode,) for proc in procs]
    assert [code for _, _, code in results] == [0] * WRITERS, [err[-600:] for _, err, _ in results]
    client = mlflow.MlflowClient(tracking_uri=uri)
    for out, _, _ in results:
        inputs = client.get_run(out.strip()).inputs.dataset_inputs
        assert [(i.dataset.name, i.dataset.digest) for i in inputs] == [("table", entry_digest(csv))]
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        assert db.execute("select count(*) from datasets").fetchone() == (1,)


def entry_digest(csv):
    from ml_service.workspace.datasets import describe_csv

    return describe_csv(csv)["digest"]
