"""The continuous-training loop (`make loop`) end to end: real pipelines, real QA container, real traffic."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ml_service.config import load_settings
from tests.conftest import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.docker]


def test_drift_new_data_retrain_new_champion_in_qa_and_production_waiting(docker_engine, tmp_path):
    foreign = ("MLOPS_STATE_DIR", "MLOPS_MODEL", "MLOPS_MODEL_NAME", "MLOPS_TRACKING_URI", "MLOPS_SCORING_KEYS")
    env = {k: v for k, v in os.environ.items() if k not in foreign}
    done = subprocess.run([sys.executable, "-m", "ml_service.monitor.loop", "--state-dir", str(tmp_path / "loop")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "2. 200 steady request rows to QA: no drift" in out
    assert "mlops monitor drift exit 4, DRIFT:" in out
    assert "triggered the retrain: champion v2 (trained on v1: " in out and "the release updated QA to v2" in out
    assert "6. production waits for an approval: run " in out
    name = f"{load_settings().model.name}_loop"
    assert docker_engine.containers.list(all=True, filters={"label": f"mlops.model.name={name}"}) == []  # cleaned up
