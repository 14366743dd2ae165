"""Benchmark (not a test): `mlops pipeline run` against DVC's `dvc repro` on the same three-stage pipeline.

Both run the same three plain pandas + scikit-learn stages (prepare: split the model project's CSV;
train: fit a Ridge; evaluate: score it), written to a temp folder: ours as a pipeline file (the stages
declare `imports:`, as a user would), DVC's as dvc.yaml stages calling the same functions.

cold:   a fresh workspace / a fresh DVC project (`dvc init` not timed), every stage runs
no-op:  the same command again: nothing changed, nothing runs; ours still records the run in MLflow
        (the bench checks that a new FINISHED pipeline run is in the store each time)

The machine may be shared and loaded: both tools are measured in the same run, alternating (which
one goes first swaps every round), and the ratios are of medians. Goals (issue 13): cold <= 1.5x
DVC's cold, no-op <= 1.0x DVC's no-op.

DVC is not a dependency of the project. Install it for the bench only, e.g.:
    python3 -m venv /tmp/dvc-venv && /tmp/dvc-venv/bin/pip install dvc
then: python bench/pipeline.py [--dvc /tmp/dvc-venv/bin/dvc] [--rounds 3]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INSTALL_DVC = "python3 -m venv /tmp/dvc-venv && /tmp/dvc-venv/bin/pip install dvc"

STAGES = '''"""Three stages, callable as mlops pipeline steps and from the command line (for DVC)."""
import json
import pickle
import sys
from pathlib import Path

TARGET = {target!r}


def prepare(inputs, params, output_dir, context):
    import pandas as pd

    frame = pd.read_csv(inputs["data"])
    test = frame.sample(frac=0.25, random_state=0)
    frame.drop(test.index).to_csv(Path(output_dir) / "train.csv", index=False)
    test.to_csv(Path(output_dir) / "test.csv", index=False)


def train(inputs, params, output_dir, context):
    import pandas as pd
    from sklearn.linear_model import Ridge

    frame = pd.read_csv(Path(inputs["prepared"]) / "train.csv")
    model = Ridge(alpha=0.5).fit(frame.drop(columns=[TARGET]), frame[TARGET])
    (Path(output_dir) / "model.pkl").write_bytes(pickle.dumps(model))


def evaluate(inputs, params, output_dir, context):
    import pandas as pd
    from sklearn.metrics import mean_squared_error

    frame = pd.read_csv(Path(inputs["prepared"]) / "test.csv")
    model = pickle.loads((Path(inputs["model"]) / "model.pkl").read_bytes())
    mse = float(mean_squared_error(frame[TARGET], model.predict(frame.drop(columns=[TARGET]))))
    (Path(output_dir) / "metrics.json").write_text(json.dumps({{"mse": mse}}))
    return {{"metrics": {{"mse": mse}}, "outcome": f"mse {{mse:.4f}}"}}


if __name__ == "__main__":
    stage, *paths = sys.argv[1:]
    out = Path(paths[-1])
    out.mkdir(parents=True, exist_ok=True)
    names = {{"prepare": ["data"], "train": ["prepared"], "evaluate": ["prepared", "model"]}}[stage]
    globals()[stage](dict(zip(names, paths[:-1])), {{}}, out, {{}})
'''

PIPELINE = """name: bench-three-stages
steps:
  prepare:
    function: benchstages:prepare
    inputs: {{data: {{path: {data}}}}}
    imports: [pandas, sklearn.linear_model, sklearn.metrics]
  train:
    function: benchstages:train
    inputs: {{prepared: {{step: prepare}}}}
    imports: [pandas, sklearn.linear_model, sklearn.metrics]
  evaluate:
    function: benchstages:evaluate
    inputs: {{prepared: {{step: prepare}}, model: {{step: train}}}}
    imports: [pandas, sklearn.linear_model, sklearn.metrics]
"""

DVC_YAML = """stages:
  prepare:
    cmd: {python} benchstages.py prepare data.csv prepared
    deps: [data.csv, benchstages.py]
    outs: [prepared]
  train:
    cmd: {python} benchstages.py train prepared model
    deps: [prepared, benchstages.py]
    outs: [model]
  evaluate:
    cmd: {python} benchstages.py evaluate prepared model evaluation
    deps: [prepared, model, benchstages.py]
    outs: [evaluation]
"""


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    took = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}")
    return took


def finished_pipeline_runs(state_dir: Path) -> int:
    with sqlite3.connect(state_dir / "mlflow.db") as db:
        return db.execute("SELECT count(*) FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
                          "WHERE t.key = 'mlops.kind' AND t.value = 'pipeline' AND r.status = 'FINISHED'").fetchone()[0]


class Ours:
    name = "mlops"

    def __init__(self, work: Path, data: Path):
        self.code = work / "code"
        self.pipeline = self.code / "pipeline.yml"
        self.pipeline.write_text(PIPELINE.format(data=data))
        self.state = None

    def env(self) -> dict[str, str]:
        env = {**os.environ, "MLOPS_ROOT": str(ROOT), "MLOPS_STATE_DIR": str(self.state),
               "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONPATH": str(self.code)}
        env.pop("MLOPS_TRACKING_URI", None)
        return env

    def fresh(self, work: Path, round_: int) -> None:
        self.state = work / f"state-{round_}"

    def run(self) -> float:
        before = finished_pipeline_runs(self.state) if (self.state / "mlflow.db").exists() else 0
        took = timed([sys.executable, "-m", "ml_service.cli", "pipeline", "run", str(self.pipeline)], ROOT, self.env())
        if finished_pipeline_runs(self.state) != before + 1:
            sys.exit("mlops pipeline run did not record a finished run")
        return took


class Dvc:
    name = "dvc"

    def __init__(self, dvc: str, work: Path, data: Path):
        self.dvc, self.work, self.data = dvc, work, data
        self.project = None

    def env(self) -> dict[str, str]:
        return {**os.environ, "DVC_NO_ANALYTICS": "1"}

    def fresh(self, work: Path, round_: int) -> None:
        self.project = work / f"dvc-{round_}"
        self.project.mkdir()
        shutil.copy(self.data, self.project / "data.csv")
        shutil.copy(work / "code" / "benchstages.py", self.project / "benchstages.py")
        (self.project / "dvc.yaml").write_text(DVC_YAML.format(python=sys.executable))
        subprocess.run([self.dvc, "init", "--no-scm", "-q"], cwd=self.project, env=self.env(), check=True)
        subprocess.run([self.dvc, "config", "core.analytics", "false"], cwd=self.project, env=self.env(), check=True)

    def run(self) -> float:
        return timed([self.dvc, "repro", "-q"], self.project, self.env())


def find_dvc(given: str | None) -> str:
    for candidate in (given, shutil.which("dvc"), "/tmp/dvc-venv/bin/dvc"):
        if candidate and Path(candidate).exists():
            return candidate
    sys.exit(f"DVC not found: install it for the bench only ({INSTALL_DVC}) or pass --dvc PATH")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="fresh projects per tool (default: %(default)s)")
    parser.add_argument("--noops", type=int, default=3, help="no-op runs per round (default: %(default)s)")
    parser.add_argument("--dvc", help="the dvc executable (default: on PATH, else /tmp/dvc-venv/bin/dvc)")
    args = parser.parse_args()
    dvc = find_dvc(args.dvc)
    sys.path.insert(0, str(ROOT))
    from ml_service.config import load_settings

    model = load_settings().model
    version = subprocess.run([dvc, "--version"], capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="mlops-bench-") as tmp:
        work = Path(tmp)
        (work / "code").mkdir()
        (work / "code" / "benchstages.py").write_text(STAGES.format(target=model.target))
        tools = [Ours(work, model.data), Dvc(dvc, work, model.data)]
        cold = {t.name: [] for t in tools}
        noop = {t.name: [] for t in tools}
        for round_ in range(args.rounds):
            order = tools if round_ % 2 == 0 else tools[::-1]
            for tool in order:
                tool.fresh(work, round_)
            for tool in order:
                cold[tool.name].append(tool.run())
            for _ in range(args.noops):
                for tool in order:
                    noop[tool.name].append(tool.run())
    print(f"pipeline benchmark: mlops vs DVC {version}, same three stages, {args.rounds} rounds x "
          f"(1 cold + {args.noops} no-op), alternating, {os.cpu_count()} cores (load: "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())})")
    for label, series in (("cold", cold), ("no-op", noop)):
        for name, values in series.items():
            print(f"  {label:<6} {name:<6} median {statistics.median(values):6.2f} s  min {min(values):6.2f} s  "
                  f"max {max(values):6.2f} s")
    cold_ratio = statistics.median(cold["mlops"]) / statistics.median(cold["dvc"])
    noop_ratio = statistics.median(noop["mlops"]) / statistics.median(noop["dvc"])
    print(f"  cold  ratio mlops/dvc {cold_ratio:.2f}x  (goal <= 1.5x: {'met' if cold_ratio <= 1.5 else 'NOT met'})")
    print(f"  no-op ratio mlops/dvc {noop_ratio:.2f}x  (goal <= 1.0x: {'met' if noop_ratio <= 1.0 else 'NOT met'}; "
          "ours records each run in MLflow)")


if __name__ == "__main__":
    main()
