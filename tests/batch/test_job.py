"""Batch scoring against a real MLflow sqlite store in a temp dir: a version of the default model project is
registered by its own pipeline, then `mlops batch score` runs through the CLI (as a user runs it).

A job killed in the middle (SIGKILL to its whole process group) and resumed gives exactly the output of an
uninterrupted job; rejected rows are reported; a finished job is not redone; CSV, Parquet and a folder of parts
give the same predictions; the MLflow run records the counts; the pipeline step runs on the local target and
(with Docker) on the docker target.
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
from tests.support.cli import mlops as in_process

pytestmark = pytest.mark.integration
ROWS = 60_000


def mlops(*args: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """`mlops *args` as its own process (where the process is the subject: its path, its imports, a container)."""
    return subprocess.run([sys.executable, "-m", "ml_service.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout, **kwargs)


def score(*args: str, process: bool = False, **kwargs) -> subprocess.CompletedProcess:
    """`mlops batch score` of the champion: in this process (cli.mlops), or its own with process=True."""
    run = mlops if process else in_process
    return run("batch", "score", "--model", f"{load_settings().model_name}@champion", *args, **kwargs)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A workspace where the default project's pipeline registered version 1."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in workspace_env(tmp_path_factory.mktemp("ws")).items():
            patch.setenv(key, value)
        for key in ("MLOPS_TRACKING_URI", "MLOPS_ARTIFACT_ROOT", "MLOPS_MODEL", "MLOPS_BUILD_ID", "MLOPS_BUILD_URI"):
            patch.delenv(key, raising=False)
        result = in_process("pipeline", "run")
        assert result.returncode == 0, result.stderr
        yield load_settings()


@pytest.fixture(scope="module")
def inputs(ws, tmp_path_factory):
    """ROWS rows resampled from the project's data (target dropped), as CSV, Parquet and a folder of parts."""
    folder = tmp_path_factory.mktemp("inputs")
    data = pd.read_csv(ws.model.data).drop(columns=[ws.model.target])
    data = data.sample(ROWS, replace=True, random_state=3).reset_index(drop=True)
    data.to_csv(folder / "rows.csv", index=False)
    data.to_parquet(folder / "rows.parquet")
    (folder / "parts").mkdir()
    for i, start in enumerate(range(0, ROWS, 25_000)):
        data.iloc[start:start + 25_000].to_parquet(folder / "parts" / f"part-{i}.parquet")
    return {"frame": data, "csv": folder / "rows.csv", "parquet": folder / "rows.parquet", "parts": folder / "parts"}


@pytest.fixture(scope="module")
def scored(inputs, tmp_path_factory):
    """Output folders of uninterrupted jobs: the CSV in chunks of 1000 rows, the Parquet file, the folder of parts."""
    folder = tmp_path_factory.mktemp("scored")
    for kind, chunk_rows in (("csv", "1000"), ("parquet", "20000"), ("parts", "20000")):
        result = score("--input", str(inputs[kind]), "--output", str(folder / kind), "--chunk-rows", chunk_rows)
        assert result.returncode == 0, result.stderr
    return folder


def test_a_job_killed_in_the_middle_resumes_to_exactly_the_uninterrupted_output(ws, inputs, scored, tmp_path):
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "ml_service.cli", "batch", "score", "--model", f"{ws.model_name}@champion",
               "--input", str(inputs["csv"]), "--output", str(out), "--chunk-rows", "1000", "--workers", "1"]
    job = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and job.poll() is None:
        try:
            if len(json.loads((out / "_manifest.json").read_text())["chunks"]) >= 3:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.005)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["status"] == "running" and 3 <= len(manifest["chunks"]) < ROWS // 1000, "not killed mid-way"

    resumed = score("--input", str(inputs["csv"]), "--output", str(out), "--chunk-rows", "1000")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after" in resumed.stdout
    got, want = pd.read_parquet(out), pd.read_parquet(scored / "csv")
    assert len(got) == ROWS and got["row"].tolist() == list(range(ROWS))
    pd.testing.assert_frame_equal(got, want)
    assert not list(out.glob(".*")) and not (out / "_model").exists()


def test_a_finished_job_is_not_redone(ws, inputs, scored):
    out = scored / "parquet"
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = score("--input", str(inputs["parquet"]), "--output", str(out), "--chunk-rows", "20000")
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_csv_parquet_and_a_folder_of_parts_give_the_same_predictions(ws, scored):
    outputs = {kind: pd.read_parquet(scored / kind) for kind in ("csv", "parquet", "parts")}
    pd.testing.assert_frame_equal(outputs["csv"], outputs["parquet"])
    pd.testing.assert_frame_equal(outputs["csv"], outputs["parts"])
    assert set(outputs["csv"]["model_version"]) == {"1"}


def test_bad_rows_are_rejected_with_their_row_and_reason_and_fail_the_job_above_the_threshold(ws, inputs, tmp_path):
    frame = inputs["frame"].head(100).astype(object)
    numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(inputs["frame"][c])
               and inputs["frame"][c].notna().all()]
    frame.loc[5, numeric[0]] = "not-a-number"
    frame.loc[17, numeric[1]] = None
    frame.to_csv(tmp_path / "bad.csv", index=False)
    out = tmp_path / "out"
    failed = score("--input", str(tmp_path / "bad.csv"), "--output", str(out))
    assert failed.returncode == 1 and "2 of 100 rows rejected" in failed.stderr
    rejects = pd.read_csv(out / "_rejects.csv")
    assert rejects["row"].tolist() == [5, 17]
    assert rejects["reason"].tolist() == [f"column {numeric[0]!r} is not a number: 'not-a-number'",
                                          f"column {numeric[1]!r} is null but required"]
    assert len(pd.read_parquet(out)) == 98
    accepted = score("--input", str(tmp_path / "bad.csv"), "--output", str(out), "--max-reject-fraction", "0.05")
    assert accepted.returncode == 0 and "nothing to do" in accepted.stdout


def test_the_mlflow_run_records_model_input_counts_and_speed(ws, scored):
    from ml_service.batch.record import EXPERIMENT
    from ml_service.workspace.tracking import connect

    manifest = json.loads((scored / "parquet" / "_manifest.json").read_text())
    client = connect(ws)
    run = client.get_run(manifest["run_id"])
    assert client.get_experiment(run.info.experiment_id).name == EXPERIMENT and run.info.status == "FINISHED"
    assert run.data.params["model_name"] == ws.model_name and run.data.params["model_version"] == "1"
    assert run.data.params["input_digest"] == manifest["input_digest"]
    metrics = run.data.metrics
    assert (metrics["rows_in"], metrics["rows_scored"], metrics["rows_rejected"]) == (ROWS, ROWS, 0)
    assert metrics["duration_s"] > 0 and metrics["rows_per_s"] > 0


def test_the_recorded_duration_and_speed_are_the_jobs_own(ws, inputs, tmp_path):
    """duration_s lies within the wall time measured around the job, and rows_per_s is at least the rows over it:
    a duration read from the wrong clock or a sum of two clock readings is far outside. No bound on how long the
    job may take (not a timed assertion)."""
    from ml_service.workspace.tracking import connect

    before = time.monotonic()
    result = score("--input", str(inputs["parquet"]), "--output", str(tmp_path / "out"))
    elapsed = time.monotonic() - before
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "out" / "_manifest.json").read_text())
    metrics = connect(ws).get_run(manifest["run_id"]).data.metrics
    assert 0 < metrics["duration_s"] <= elapsed
    assert metrics["rows_per_s"] >= ROWS / elapsed


def test_in_the_embedded_workspace_a_job_runs_and_records_its_run_without_mlflow(ws, inputs, scored, tmp_path):
    """MLflow made unimportable (a package of that name that raises, first on the path of the job and of every
    process it starts): the job finds the model and records its run straight in the store, with the same output."""
    fake = tmp_path / "path" / "mlflow"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('the batch job imported MLflow')\n")
    out = tmp_path / "out"
    result = score("--input", str(inputs["csv"]), "--output", str(out), "--chunk-rows", "1000",
                   process=True, env={**os.environ, "PYTHONPATH": str(fake.parent)})
    assert result.returncode == 0, result.stderr
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(scored / "csv"))
    from ml_service.workspace.tracking import connect

    run = connect(ws).get_run(json.loads((out / "_manifest.json").read_text())["run_id"])
    assert run.info.status == "FINISHED" and run.data.metrics["rows_scored"] == ROWS
    assert run.data.tags["model_version"] == "1" and run.info.run_name == f"batch: {ws.model_name} v1"


def test_the_pipeline_step_scores_on_the_local_compute_target(ws, inputs, tmp_path):
    pipeline = tmp_path / "batch.yml"
    pipeline.write_text(f"""
name: batch-scoring
steps:
  score:
    function: ml_service.batch.step:score
    inputs:
      data: {{path: "{inputs['parts']}"}}
      model: {{alias: champion}}
    params: {{output: "{tmp_path / 'out'}", chunk_rows: 30000}}
    compute: local
""")
    result = in_process("pipeline", "run", str(pipeline))
    assert result.returncode == 0, result.stderr
    assert f"scored {ROWS:,} of {ROWS:,} rows with {ws.model_name} v1" in result.stdout
    assert len(pd.read_parquet(tmp_path / "out")) == ROWS


@pytest.mark.docker
def test_the_pipeline_step_scores_on_the_docker_compute_target(docker_engine, ws, inputs, scored, tmp_path):
    """The batch step in a container of the training image (the input mounted read-only, the workspace at
    its own path, read-write): the same predictions as on this machine, and the step's outcome names the model."""
    output = ws.state_dir / "scored-in-docker"  # the workspace is mounted: the predictions outlive the container
    pipeline = tmp_path / "batch.yml"
    pipeline.write_text(f"""
name: batch-scoring-in-docker
steps:
  score:
    function: ml_service.batch.step:score
    inputs:
      data: {{path: "{inputs['parquet']}"}}
      model: {{alias: champion}}
    params: {{output: "{output}", chunk_rows: 20000}}
    compute: docker
    reuse: false
""")
    result = mlops("pipeline", "run", str(pipeline), timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"scored {ROWS:,} of {ROWS:,} rows with {ws.model_name} v1" in result.stdout
    pd.testing.assert_frame_equal(pd.read_parquet(output), pd.read_parquet(scored / "parquet"))
    assert not docker_engine.containers.list(all=True, filters={"label": "mlops.kind=pipeline-step"})
