"""The continuous-training loop on one machine (`make loop`): every step is the real command or pipeline.

1. retrain pipeline (`mlops ci run retrain`): the champion v1 -> release pipeline -> QA container
2. steady traffic to QA -> `mlops monitor drift` says no drift
3. drifting traffic to QA (real rows from one end of the distribution, so every value still meets the
   data contract) -> `mlops monitor drift` exits 4
4. labels arrive for the drifting requests (a CSV keyed by request id; the relation the champion learned
   no longer holds for them) -> `mlops data add --from-collected`
   -> a new data set version -> its webhook triggers the retrain -> v2 beats v1 on the same test split ->
   new champion -> release -> QA serves v2 -> production waits for an approval

It runs in its own workspace (a fresh state folder; the registered model is `<name>_loop`), so the
project's own workspace, registry, images and QA container are left alone.
"""
from __future__ import annotations

import csv
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from ml_service import env as envvars
from ml_service.errors import MLOpsError

STEADY_ROWS = 200
DRIFT_ROWS = 300
DRIFT_SHARE = 1 / 3


class LoopError(MLOpsError):
    """A step of the loop did not end as the story says."""


class Loop:
    """The loop's workspace, its commands and what it tells."""

    def __init__(self, state_dir: Path, project: str = ""):
        from ml_service.config import load_settings

        base = load_settings()
        if project:
            base = base.select(project)
        self.project = base.model
        self.name = f"{self.project.name}_loop"
        self.env = {**os.environ, "MLOPS_STATE_DIR": str(state_dir), "MLOPS_MODEL": self.project.project,
                    "MLOPS_MODEL_NAME": self.name, "MLOPS_USER": envvars.MLOPS_USER.get() or "loop@localhost",
                    "MLFLOW_DISABLE_TELEMETRY": "true"}
        for key in ("MLOPS_TRACKING_URI", "MLOPS_ARTIFACT_ROOT", "MLOPS_EXPERIMENT"):
            self.env.pop(key, None)
        self.state_dir = Path(state_dir)
        self.root = base.root
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        """One line of the story, with the time since the start."""
        print(f"[{time.monotonic() - self.started:6.1f}s] {text}", flush=True)

    def mlops(self, *args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
        """Run an mlops command in the loop's workspace; a code outside ok ends the loop with its output."""
        done = subprocess.run([sys.executable, "-m", "ml_service.cli", *args], cwd=self.root, env=self.env,
                              capture_output=True, text=True)
        if done.returncode not in ok:
            raise LoopError(f"`mlops {' '.join(args)}` exited {done.returncode}:\n{done.stdout[-3000:]}"
                            f"{done.stderr[-2000:]}")
        return done

    def settings(self):
        """The loop workspace's settings."""
        from ml_service.config import load_settings

        return load_settings(self.env)

    def qa(self) -> tuple[str, str]:
        """(version, url) that QA serves."""
        rows = json.loads(self.mlops("deploy", "list", "--json").stdout)
        live = [r for r in rows if r.get("environment") == "qa" and r.get("model") == self.name
                and r.get("status") == "live"]
        if not live:
            raise LoopError(f"QA serves no version of {self.name}: {rows}")
        return str(live[0]["version"]), live[0]["url"]

    def champion(self) -> str:
        """The champion's version."""
        from ml_service.workspace import registry, tracking

        version = registry.get_alias(tracking.connect(self.settings()), self.name, "champion")
        return str(version.version) if version else ""


def training_rows(project) -> tuple[list[str], list[list], list[str], list[bool]]:
    """(features, feature rows, labels, numeric?) of the project's data, rows with a missing value left out."""
    with open(project.data, newline="") as handle:
        reader = csv.DictReader(handle)
        features = [c for c in reader.fieldnames if c != project.target]
        kept = [r for r in reader if all(r[c] != "" for c in features)]
    numeric = []
    for name in features:
        try:
            [float(r[name]) for r in kept]
            numeric.append(True)
        except ValueError:
            numeric.append(False)
    rows = [[float(r[c]) if numeric[i] else r[c] for i, c in enumerate(features)] for r in kept]
    return features, rows, [r[project.target] for r in kept], numeric


def drifting(rows: list[list], labels: list[str], numeric: list[bool], task: str, rng: random.Random,
             count: int = DRIFT_ROWS) -> tuple[list[int], list[str]]:
    """Drifting traffic made of real rows (so every value still meets the data contract): rows drawn from
    the upper third of the mean z-score of the numeric features (covariate drift), and their labels
    moved (concept drift: the relation the champion learned no longer holds): regression targets up by
    one standard deviation (within the training range), classes to the next class."""
    columns = [i for i, is_number in enumerate(numeric) if is_number]
    stats = []
    for i in columns:
        values = [r[i] for r in rows]
        mean = sum(values) / len(values)
        stats.append((i, mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values)) or 1.0))
    score = [sum((r[i] - mean) / sd for i, mean, sd in stats) / max(len(stats), 1) for r in rows]
    cut = sorted(score)[int(len(score) * (1 - DRIFT_SHARE))]
    pool = [k for k, value in enumerate(score) if value >= cut]
    picks = [rng.choice(pool) for _ in range(count)]
    if task == "classification":
        classes = sorted(set(labels))
        moved = {c: classes[(k + 1) % len(classes)] for k, c in enumerate(classes)}
        return picks, [moved[labels[p]] for p in picks]
    targets = [float(v) for v in labels]
    mean = sum(targets) / len(targets)
    sd = math.sqrt(sum((v - mean) ** 2 for v in targets) / len(targets))
    top = max(targets)
    whole = all(v.strip().lstrip("-").isdigit() for v in labels)
    return picks, [str(round(min(top, targets[p] + sd))) if whole else repr(min(top, targets[p] + sd))
                   for p in picks]


def post(url: str, rows: list[list]) -> None:
    """Score rows on QA in requests of 20 (with the scoring key when one is set)."""
    headers = {"Content-Type": "application/json"}
    keys = envvars.MLOPS_SCORING_KEYS.get()
    if keys:
        headers["Authorization"] = f"Bearer {keys.split(',')[0].strip()}"
    for start in range(0, len(rows), 20):
        body = json.dumps({"data": rows[start:start + 20]}).encode()
        request = urllib.request.Request(f"{url}/score", data=body, headers=headers)
        with urllib.request.urlopen(request, timeout=30) as response:
            if response.status != 200:
                raise LoopError(f"QA answered {response.status} to /score")


def wait_collected(folder: Path, rows: int, version: str, timeout_s: float = 30.0):
    """The collected rows of version once at least `rows` of them are on disk (the service flushes every second)."""
    from ml_service.data import collected

    deadline = time.monotonic() + timeout_s
    while True:
        found = collected.read(folder, model_version=version) if folder.is_dir() else collected.Collected()
        if len(found.rows) >= rows or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def run(state_dir: Path, project: str = "") -> int:
    """The whole loop; returns 0 when every step ended as the story says."""
    loop = Loop(state_dir, project)
    loop.say(f"workspace {state_dir} (model {loop.name}, project {loop.project.project})")
    loop.mlops("pipeline", "publish")
    loop.mlops("ci", "run", "retrain")
    version, url = loop.qa()
    loop.say(f"1. champion v{loop.champion()} trained by the retrain pipeline; the release put it in QA: v{version} "
             f"at {url}; production waits for an approval")

    from ml_service.monitor.config import load

    settings = loop.settings()
    folder = load(settings).collected(settings, "qa", loop.name)
    features, rows, labels, numeric = training_rows(loop.project)
    rng = random.Random(7)
    picks = [rng.randrange(len(rows)) for _ in range(STEADY_ROWS)]
    post(url, [rows[i] for i in picks])
    if len(wait_collected(folder, STEADY_ROWS, version).rows) < STEADY_ROWS:
        raise LoopError(f"QA collected no inputs in {folder}: its container must run with data collection into "
                        "monitor.collect_dir (ml_service.monitor.config.collection_mount)")
    calm = loop.mlops("monitor", "drift", "--env", "qa", "--window", "1h", "--no-retrain")
    loop.say(f"2. {STEADY_ROWS} steady request rows to QA: {calm.stdout.strip().splitlines()[-1]}")
    started = float(int(time.time()) + 1)  # a whole second, after the last steady request
    time.sleep(max(0.0, started - time.time()))

    picks, new_labels = drifting(rows, labels, numeric, loop.project.task, rng)
    shifted = [rows[p] for p in picks]
    post(url, shifted)
    found = wait_collected(folder, STEADY_ROWS + DRIFT_ROWS, version)
    drift = loop.mlops("monitor", "drift", "--env", "qa", "--since",
                       time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
                       "--no-retrain", ok=(4,))
    report = next(line for line in drift.stdout.splitlines() if line.startswith("report: "))
    loop.say(f"3. {DRIFT_ROWS} drifting request rows to QA: mlops monitor drift exit 4, "
             f"{next(line for line in drift.stdout.splitlines() if line.startswith('DRIFT'))}; {report}")

    by_values = {json.dumps(row): label for row, label in zip(shifted, new_labels)}
    with tempfile.TemporaryDirectory() as tmp:
        labels_file = Path(tmp) / "labels.csv"
        with open(labels_file, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["request_id", "row", loop.project.target])
            for (request_id, index), row, stamp in zip(found.keys, found.rows, found.times):
                if stamp >= started and json.dumps(row) in by_values:
                    writer.writerow([request_id, index, by_values[json.dumps(row)]])
        added = loop.mlops("data", "add", loop.project.dataset, "--from-collected", str(folder), "--labels",
                           str(labels_file))
    first = added.stdout.splitlines()[:2]
    loop.say(f"4. labels for the drifting requests arrived: mlops data add --from-collected: {first[0]}; "
             f"{first[1]}")
    from ml_service.ci.server.service import open_store
    from ml_service.data import registry

    new_version, _ = loop.qa()
    settings = loop.settings()
    data_version = registry.get(settings, loop.project.dataset)
    trained = ", ".join(registry.trained_on(settings, data_version)) or "no model version"
    champion = loop.champion()
    loop.say(f"5. data set {data_version.name} v{data_version.version} triggered the retrain: champion "
             f"v{champion} (trained on v{data_version.version}: {trained}); the release updated QA to v{new_version}")
    store = open_store(settings)
    pending = [f"run {a['run_id']} ({store.get_run(a['run_id']).pipeline}) stage {a['stage']}: "
               f"mlops ci approve {a['run_id']}" for a in store.approvals(status="pending")]
    loop.say(f"6. production waits for an approval: {'; '.join(pending) or 'nothing pending'}")
    if not pending:
        raise LoopError("no release waits for the production approval")
    if new_version == version or champion == version:
        raise LoopError(f"the loop did not produce a new champion in QA (QA v{new_version}, champion v{champion})")
    loop.say(f"done in {time.monotonic() - loop.started:.0f}s. Browse it: MLOPS_STATE_DIR={state_dir} mlops ui")
    return 0


def cleanup(name: str) -> None:
    """Remove the loop's QA containers and images (its workspace folder stays, to be browsed)."""
    from ml_service.containers import docker_client

    client = docker_client()
    for container in client.containers.list(all=True, filters={"label": f"mlops.model.name={name}"}):
        container.remove(force=True)
    for image in client.images.list(name=f"mlops/{name}"):
        client.images.remove(image.id, force=True)


def main(argv: list[str] | None = None) -> int:
    """`python -m ml_service.monitor.loop [--state-dir DIR] [--project P] [--keep]`."""
    import argparse

    parser = argparse.ArgumentParser(prog="make loop", description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", help="the loop's workspace (default: a new folder under .mlops/loop/)")
    parser.add_argument("--project", default="", help="model project (default: the first in mlops.yml)")
    parser.add_argument("--keep", action="store_true", help="keep the loop's QA container and images")
    args = parser.parse_args(argv)
    from ml_service.config import load_settings

    settings = load_settings()
    state_dir = Path(args.state_dir) if args.state_dir else \
        settings.state_dir / "loop" / time.strftime("%Y%m%d-%H%M%S")
    state_dir.mkdir(parents=True, exist_ok=True)
    name = f"{(settings.select(args.project) if args.project else settings).model.name}_loop"
    try:
        return run(state_dir, args.project)
    except MLOpsError as exc:
        print(f"loop failed: {exc}", file=sys.stderr)
        return exc.exit_code
    finally:
        if not args.keep:
            cleanup(name)


if __name__ == "__main__":
    sys.exit(main())
