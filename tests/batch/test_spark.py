"""Batch scoring on a real Spark standalone cluster started by the test: a master and two workers, each a process
of its own on 127.0.0.1 (pyspark's spark-class, Debian's Java 17), one core and a 512 MB executor each.

The default model project's pipeline registers version 1 in a temp workspace; `mlops batch score --engine spark
--master spark://...` then scores the same input as the local engine, and the outputs are compared row for row
(row numbers, predictions, the model version column, the rejects with their reasons). A worker killed in the
middle of a job (SIGKILL to its whole process group: executor and Python workers too) and a job whose driver is
killed and rerun both end with exactly the uninterrupted output.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from ml_service.config import load_settings
from tests.conftest import ROOT, workspace_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROWS = 80_000
SMALL = ("--conf", "spark.executor.memory=512m", "--conf", "spark.executor.cores=1", "--conf",
         "spark.driver.memory=512m", "--conf", "spark.network.timeout=60s")


def mlops(*args: str, timeout: float = 900, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ml_service.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout, **kwargs)


def spark_command(model: str, source, out, master: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "ml_service.cli", "batch", "score", "--model", model, "--input", str(source),
            "--output", str(out), "--engine", "spark", "--master", master, "--split-mb", "1", *SMALL, *extra]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A standalone master and two workers (1 core, 1 GB each) on 127.0.0.1."""
    try:
        from ml_service.batch.spark_standalone import StandaloneCluster
        import pyspark  # noqa: F401
    except ImportError:
        pytest.fail("pyspark is not installed: make install-spark", pytrace=False)
    with StandaloneCluster(workers=2, folder=tmp_path_factory.mktemp("spark"), worker_memory="1g") as started:
        yield started


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A workspace where the default project's pipeline registered version 1."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in workspace_env(tmp_path_factory.mktemp("ws")).items():
            patch.setenv(key, value)
        for key in ("MLOPS_TRACKING_URI", "MLOPS_ARTIFACT_ROOT", "MLOPS_MODEL", "MLOPS_BUILD_ID", "MLOPS_BUILD_URI"):
            patch.delenv(key, raising=False)
        result = mlops("pipeline", "run")
        assert result.returncode == 0, result.stderr
        yield load_settings()


@pytest.fixture(scope="module")
def inputs(ws, tmp_path_factory):
    """ROWS rows resampled from the project's data (target dropped) with two bad rows, as one CSV; and a folder
    of Parquet parts of the same rows less the bad ones."""
    folder = tmp_path_factory.mktemp("inputs")
    data = pd.read_csv(ws.model.data).drop(columns=[ws.model.target])
    data = data.sample(ROWS, replace=True, random_state=5).reset_index(drop=True)
    numeric = [c for c in data.columns if pd.api.types.is_numeric_dtype(data[c]) and data[c].notna().all()]
    (folder / "parts").mkdir()
    for i, start in enumerate(range(0, ROWS, 30_000)):
        data.iloc[start:start + 30_000].to_parquet(folder / "parts" / f"part-{i}.parquet", row_group_size=10_000)
    bad = data.astype(object)
    bad.loc[7, numeric[0]] = "not-a-number"
    bad.loc[70_001, numeric[1]] = None
    bad.to_csv(folder / "rows.csv", index=False)
    return {"csv": folder / "rows.csv", "parts": folder / "parts", "numeric": numeric}


@pytest.fixture(scope="module")
def local(ws, inputs, tmp_path_factory):
    """The local engine's outputs of both inputs."""
    folder = tmp_path_factory.mktemp("local")
    for kind in ("csv", "parts"):
        done = mlops("batch", "score", "--model", f"{ws.model_name}@champion", "--input", str(inputs[kind]),
                     "--output", str(folder / kind), "--chunk-rows", "25000")
        assert done.returncode == 0, done.stderr
    return folder


def assert_same_output(got, want) -> None:
    """Row for row the same predictions and model version, and the same rejects with the same reasons."""
    pd.testing.assert_frame_equal(pd.read_parquet(got), pd.read_parquet(want))
    if (want / "_rejects.csv").exists():
        pd.testing.assert_frame_equal(pd.read_csv(got / "_rejects.csv"), pd.read_csv(want / "_rejects.csv"))
    else:
        assert not (got / "_rejects.csv").exists()


def test_spark_on_a_standalone_cluster_gives_the_local_engines_rows_and_records_the_run(
        ws, inputs, local, cluster, tmp_path):
    from ml_service.workspace.tracking import connect

    for kind in ("csv", "parts"):
        out = tmp_path / kind
        done = subprocess.run(spark_command(f"{ws.model_name}@champion", inputs[kind], out, cluster.url), cwd=ROOT,
                              capture_output=True, text=True, timeout=1200)
        assert done.returncode == 0, done.stderr[-3000:]
        assert_same_output(out, local / kind)
        manifest = json.loads((out / "_manifest.json").read_text())
        assert manifest["status"] == "finished" and manifest["engine"] == "spark"
        assert sum(c["rows"] for c in manifest["chunks"].values()) == ROWS
        run = connect(ws).get_run(manifest["run_id"])
        assert run.info.status == "FINISHED"
        assert (run.data.params["engine"], run.data.params["master"]) == ("spark", cluster.url)
        assert run.data.params["model_version"] == "1" and run.data.params["input_digest"] == manifest["input_digest"]
        assert run.data.metrics["rows_in"] == ROWS
        assert run.data.metrics["rows_rejected"] == (2 if kind == "csv" else 0)
    rejects = pd.read_csv(tmp_path / "csv" / "_rejects.csv")
    assert rejects["row"].tolist() == [7, 70_001]
    assert rejects["reason"].tolist() == [f"column {inputs['numeric'][0]!r} is not a number: 'not-a-number'",
                                          f"column {inputs['numeric'][1]!r} is null but required"]


def wait_for_commits(out, at_least: int, job: subprocess.Popen, seconds: float = 900) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and job.poll() is None:
        found = len(list((out / "_commits").glob("part-*.json"))) if (out / "_commits").is_dir() else 0
        if found >= at_least:
            return found
        time.sleep(0.2)
    raise AssertionError(f"no {at_least} committed split(s) in {out} (job exit {job.poll()})")


def test_a_worker_killed_mid_job_still_ends_with_exactly_the_local_output(ws, inputs, local, cluster, tmp_path):
    out = tmp_path / "killed-worker"
    job = subprocess.Popen(spark_command(f"{ws.model_name}@champion", inputs["csv"], out, cluster.url), cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_commits(out, 1, job)
    splits = json.loads((out / "_manifest.json").read_text())["splits"]
    cluster.kill_worker(0)
    stdout, stderr = job.communicate(timeout=1200)
    assert job.returncode == 0, stderr[-3000:]
    committed = json.loads((out / "_manifest.json").read_text())
    assert splits > 2 and len(committed["chunks"]) == splits
    assert_same_output(out, local / "csv")
    assert cluster.alive_workers() == 1


def test_a_job_whose_driver_is_killed_resumes_to_exactly_the_uninterrupted_output(
        ws, inputs, local, cluster, tmp_path):
    out = tmp_path / "killed-driver"
    command = spark_command(f"{ws.model_name}@champion", inputs["csv"], out, cluster.url)
    job = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    wait_for_commits(out, 1, job)
    os.killpg(job.pid, signal.SIGKILL)  # the mlops process and its Spark driver (JVM)
    job.wait()
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["status"] == "running"
    committed_before = {p.name: p.stat().st_mtime_ns for p in (out / "_commits").glob("part-*.json")}
    assert 1 <= len(committed_before) < manifest["splits"], "not killed mid-way"

    resumed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming after" in resumed.stdout
    assert_same_output(out, local / "csv")
    kept = {p.name: p.stat().st_mtime_ns for p in (out / "_commits").glob("part-*.json") if p.name in committed_before}
    assert kept == committed_before  # committed splits were not scored again
    assert not list(out.glob(".*")) and not list((out / "_commits").glob(".*"))
