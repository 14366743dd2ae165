"""The continuous-training loop (`make loop`) end to end: real pipelines, real QA container, real traffic; and
the drifting traffic it sends, without Docker."""
from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys

import pytest

from ml_service.config import load_settings
from tests.conftest import ROOT

pytestmark = pytest.mark.integration


@pytest.mark.docker
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


def test_drifting_rows_come_from_the_upper_third_of_the_mean_z_score_whatever_each_columns_scale():
    """Each numeric column counts alike (z-scores): a column in thousands does not outweigh one in fractions."""
    from ml_service.monitor.loop import DRIFT_SHARE, drifting

    rng = random.Random(7)
    rows = [[rng.random(), "x", 5000 + 1000 * rng.random()] for _ in range(90)]
    numeric = [True, False, True]
    stats = [(i, statistics.fmean(r[i] for r in rows), statistics.pstdev(r[i] for r in rows)) for i in (0, 2)]
    z = [sum((r[i] - mean) / sd for i, mean, sd in stats) / 2 for r in rows]
    cut = sorted(z)[int(len(z) * (1 - DRIFT_SHARE))]
    picks, labels = drifting(rows, ["1"] * 90, numeric, "regression", random.Random(1), count=200)
    assert len(picks) == 200 and min(z[p] for p in picks) >= cut - 1e-9
    assert len({p for p in picks}) > 10  # drawn from the pool, not one row
