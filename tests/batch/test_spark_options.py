"""The Spark engine's options, checked before Spark starts: the master follows Spark's conventions (--master, else
spark.master of spark-defaults.conf, else local[*]), --conf takes spark.KEY=VALUE, and the local engine's options
are refused with --engine spark (and Spark's without it), exit 2, nothing written."""
from __future__ import annotations

import subprocess
import sys

import pytest

from ml_service.batch.spark_session import job_conf, master_url, parse_conf
from ml_service.errors import UsageError
from tests.conftest import ROOT


def test_the_master_is_the_flag_else_spark_defaults_else_local(tmp_path, monkeypatch):
    monkeypatch.delenv("SPARK_HOME", raising=False)
    monkeypatch.setenv("SPARK_CONF_DIR", str(tmp_path))
    assert master_url(None) == "local[*]"
    (tmp_path / "spark-defaults.conf").write_text("# a cluster\nspark.master   spark://10.1.2.3:7077\n")
    assert master_url(None) == "spark://10.1.2.3:7077"
    assert master_url("local[2]") == "local[2]"


def test_conf_pairs_are_spark_settings_and_the_jobs_own_pin_its_splits():
    assert parse_conf(["spark.executor.memory=2g", "spark.x=a=b"]) == {"spark.executor.memory": "2g", "spark.x": "a=b"}
    for bad in ("executor.memory=2g", "spark.executor.memory"):
        with pytest.raises(UsageError, match="expected spark.KEY=VALUE"):
            parse_conf([bad])
    conf = job_conf(16 << 20)
    assert conf["spark.sql.files.maxPartitionBytes"] == str(16 << 20) and conf["spark.sql.files.minPartitionNum"] == "1"
    assert conf["spark.speculation"] == "false"


@pytest.mark.parametrize("extra, message", [
    (["--engine", "spark", "--workers", "2"], "--workers and --chunk-rows apply to the local engine"),
    (["--engine", "spark", "--chunk-rows", "10"], "--workers and --chunk-rows apply to the local engine"),
    (["--engine", "spark", "--split-mb", "0"], "--split-mb must be at least 1"),
    (["--master", "local[2]"], "--master and --conf apply to --engine spark"),
    (["--engine", "spark", "--conf", "nope=1"], "--conf 'nope=1': expected spark.KEY=VALUE"),
])
def test_options_of_the_other_engine_are_refused_before_anything_runs(tmp_path, extra, message):
    done = subprocess.run([sys.executable, "-m", "ml_service.cli", "batch", "score", "--model", "m@champion",
                           "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "out"), *extra],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 2 and message in done.stderr
    assert not (tmp_path / "out").exists()


def test_the_split_is_the_flag_else_the_resumed_jobs_else_the_default(tmp_path):
    from ml_service.batch.spark_job import DEFAULT_SPLIT_MB, SparkSpec, resolve_split

    spec = SparkSpec(model="m:1", input="in.csv", output=tmp_path)
    started_at_16 = {"engine": "spark", "split_bytes": 16 << 20}
    assert resolve_split(spec, None).split_bytes == DEFAULT_SPLIT_MB << 20
    assert resolve_split(spec, started_at_16).split_bytes == 16 << 20  # a job begun with the old default resumes
    assert resolve_split(SparkSpec(model="m:1", input="in.csv", output=tmp_path, split_mb=2), started_at_16) \
        .split_bytes == 2 << 20  # the flag wins: the identity check then names the difference
    assert resolve_split(spec, {"engine": "local", "chunk_rows": 100}).split_bytes == DEFAULT_SPLIT_MB << 20
