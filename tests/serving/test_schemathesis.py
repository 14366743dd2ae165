"""Schemathesis over /openapi.json against the real scoring process: no request it generates gets a 5xx.

CI: at least 2,000 cases (about a minute on 2 cores); MLOPS_ADVERSARIAL_LONG=1: ten times as many per
operation. The model is the classifier with text, boolean and optional columns (the richest schema here).
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.serving_process import scoring_server
from tests.support.frame_score import save_classifier

pytestmark = pytest.mark.integration
LONG = os.environ.get("MLOPS_ADVERSARIAL_LONG") == "1"


def test_schemathesis_finds_no_server_error(tmp_path):
    model = save_classifier(tmp_path / "classifier")
    env = {"MODEL_DIR": str(model), "MLOPS_MODEL_NAME": "classifier", "MLOPS_LOG_REQUESTS": "false"}
    cli = Path(sys.executable).parent / "schemathesis"
    with scoring_server(env, tmp_path / "server.log") as (proc, url):
        result = subprocess.run([str(cli), "run", f"{url}/openapi.json", "--checks", "not_a_server_error",
                                 "--max-examples", "10000" if LONG else "1000", "--workers", "6",
                                 "--phases", "examples,coverage,fuzzing", "--request-timeout", "20",
                                 # no example database: without it Hypothesis keeps no Pareto front of targets and
                                 # writes no files (more than half of the client CPU); the same cases, none replayed
                                 "--generation-database", "none"],
                                capture_output=True, text=True, timeout=3600 if LONG else 300)
        assert proc.poll() is None
    summary = result.stdout[-3000:]
    assert result.returncode == 0, summary
    generated = re.search(r"(\d+) generated, (\d+) passed", result.stdout)
    assert generated and generated.group(1) == generated.group(2), summary
    assert int(generated.group(1)) >= 2000, summary
    print(f"schemathesis: {generated.group(0)}")
