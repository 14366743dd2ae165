"""Benchmark (not a test): how long each Studio page takes with 1,000 pipeline runs in the store.

Builds a workspace in a temp dir: 1,000 CI runs (build -> retrain -> release chains, with stage/job/
step records, logs, JUnit results and coverage; the newest release waits for approval), a real MLflow
sqlite store with ML pipeline runs, registered versions and deployment records. Starts `mlops studio`
on 127.0.0.1, logs in over HTTP, loads every page once (warm-up), then times each page.

Usage: python bench/studio.py [--repeat 20]. Target: every page under 200 ms on a 2-core machine.
"""
from __future__ import annotations

import argparse
import http.cookiejar
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = 1000
MODEL = "bench_model"
USER, PASSWORD = "approver@example.com", "bench-password-1"
TARGET_MS = 200
CONFIG = f"""
models:
  - {{project: {MODEL}, name: {MODEL}}}
environments:
  qa: {{}}
  production:
    approval: {{approvers: [{USER}]}}
"""
JUNIT = "".join(f'<testcase classname="tests.unit.test_{i // 20}" name="test_{i}" time="0.01"/>' for i in range(200))


def build_store(settings) -> tuple[int, int]:
    """RUNS runs through the store's own API; returns (a finished retrain run, the waiting release run).

    Written in memory (/dev/shm, where a commit costs no fsync), then copied to the workspace on disk,
    which is what the Studio reads."""
    from ml_service.ci.server.store import Store

    scratch = Path(tempfile.mkdtemp(prefix="mlops-bench-ci-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    try:
        ids = _fill(Store(scratch), settings)
        shutil.copytree(scratch, settings.state_dir / "ci")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return ids


def _fill(store, settings) -> tuple[int, int]:
    kinds = ("build", "retrain", "release")
    previous = 0
    retrain_id = waiting = 0
    for i in range(RUNS):
        kind = kinds[i % 3]
        run_id = store.create_run(kind, f".pipelines/{kind}.yml", "IndividualCI" if kind == "build" else
                                  "ResourceTrigger", "main" if i % 4 else f"feature/{i}", f"{i:040x}",
                                  "dev@example.com", {"model": f"{MODEL}:2"} if kind == "release" else {},
                                  str(settings.root), triggered_by=previous if kind != "build" else 0)
        previous = run_id
        last = i == RUNS - 1 or (i == RUNS - 2 and kind == "release")
        for stage in ("Test", "Deploy"):
            store.set_record(run_id, stage, "stage", name=stage, status="completed", result="Succeeded",
                             started=1.0, finished=9.0)
            store.set_record(run_id, f"{stage}/Job", "job", name="Job", status="completed", result="Succeeded")
            log = store.log_path(run_id, f"{stage}.Job.00")
            log.write_text("".join(f"{stage} line {n}\n" for n in range(200)))
            store.set_record(run_id, f"{stage}/Job/00", "step", name="step", display=f"{stage} step",
                             status="completed", result="Succeeded" if i % 7 else "Failed",
                             log=str(settings.state_dir / "ci" / log.relative_to(store.directory)),
                             started=2.0, finished=5.0)
        if kind == "retrain":
            retrain_id = run_id
            results = store.artifacts_dir(run_id) / "test-results"
            results.mkdir(parents=True)
            (results / "TEST-unit.xml").write_text(f'<testsuite name="unit" tests="200">{JUNIT}</testsuite>')
            (store.artifacts_dir(run_id) / "coverage").mkdir()
            (store.artifacts_dir(run_id) / "coverage" / "coverage.xml").write_text('<coverage line-rate="0.9"/>')
        if kind == "release" and last:
            store.request_approval(run_id, "Deploy", "Job", "production", 3600)
            store.update_run(run_id, status="waiting")
            waiting = run_id
        else:
            store.update_run(run_id, status="completed", result="succeeded" if i % 7 else "failed",
                             started=1.0, finished=9.0)
    return retrain_id, waiting


def build_mlflow(settings) -> str:
    """ML pipeline runs, versions with evaluate metrics, deployment records; returns a pipeline run id."""
    from ml_service.deploy import records
    from ml_service.workspace import tracking

    client = tracking.connect(settings)
    experiment = tracking.ensure_experiment(client, settings)
    client.create_registered_model(MODEL)
    parent_id = ""
    for version in range(1, 21):
        parent = client.create_run(experiment, run_name="retrain", tags={
            "mlops.kind": "pipeline", "mlops.pipeline.name": "retrain", "mlops.model.name": MODEL,
            "mlops.outcome": f"registered {MODEL} version {version}", "BuildId": str(version * 3 - 1)})
        parent_id = parent.info.run_id
        evaluate = client.create_run(experiment, run_name="evaluate", tags={
            "mlflow.parentRunId": parent_id, "mlops.step.name": "evaluate",
            "mlops.outcome": f"promoted: candidate mse {3000 - version:.4f} vs champion v{version - 1} 3000.0000"})
        client.log_metric(evaluate.info.run_id, "candidate_mse", 3000 - version)
        client.log_metric(evaluate.info.run_id, "champion_mse", 3000.0)
        for run in (evaluate, parent):
            client.set_terminated(run.info.run_id, "FINISHED")
        client.create_model_version(MODEL, f"{parent.info.artifact_uri}/model", run_id=evaluate.info.run_id,
                                    tags={"run_id": evaluate.info.run_id, "metric": "mse",
                                          "mse": repr(3000.0 - version), "pipeline_run_id": parent_id})
        client.set_registered_model_alias(MODEL, "champion", str(version))
    with socket.socket() as s:  # a QA URL where nothing listens: the health check answers at once
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    for version in range(1, 21):
        records.record(settings, "qa", MODEL, str(version), f"mlops/{MODEL}:{version}",
                       f"http://127.0.0.1:{closed}", records.LIVE, "url")
    records.record(settings, "production", MODEL, "19", f"mlops/{MODEL}:19", "", records.DESIRED, "gitops")
    return parent_id


class Client:
    """A logged-in HTTP client with a cookie jar."""

    def __init__(self, base: str):
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def get(self, path: str) -> tuple[int, bytes, float]:
        started = time.perf_counter()
        with self.opener.open(self.base + path, timeout=30) as response:
            body = response.read()
            return response.status, body, (time.perf_counter() - started) * 1000

    def log_in(self) -> None:
        page = self.get("/login")[1].decode()
        token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        form = urllib.parse.urlencode({"csrf": token, "user": USER, "password": PASSWORD, "next": "/runs"}).encode()
        with self.opener.open(self.base + "/login", data=form, timeout=30) as response:
            assert response.url.endswith("/runs"), response.url


def build(project: Path) -> tuple[dict, dict]:
    """The workspace in project: returns (the environment that points at it, ids of pages to time)."""
    (project / "mlops.yml").write_text(CONFIG)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    env.update({"MLOPS_ROOT": str(project), "MLFLOW_DISABLE_TELEMETRY": "true"})
    os.environ.update(env)
    from ml_service.config import load_settings
    from ml_service.studio import users

    settings = load_settings()
    started = time.perf_counter()
    retrain_id, waiting = build_store(settings)
    pipeline_run = build_mlflow(settings)
    users.add_user(settings.state_dir, USER, PASSWORD)
    print(f"workspace: {RUNS} runs, 20 model versions, 21 deployments; built in {time.perf_counter() - started:.0f} s")
    return env, {"retrain": retrain_id, "waiting": waiting, "pipeline_run": pipeline_run}


def time_pages(client: Client, ids: dict, repeat: int) -> float:
    """Load each page once, then repeat times; print the numbers; return the slowest load in ms."""
    pages = ["/runs", "/runs?pipeline=build&result=failed", "/runs?page=10", f"/runs/{ids['retrain']}",
             f"/runs/{ids['retrain']}/log/Test/Job/00", "/approvals", "/ml", f"/ml/{ids['pipeline_run']}", "/models",
             "/deployments"]
    worst = 0.0
    for page in pages:
        status, body, _ = client.get(page)
        assert status == 200, (page, status)
        if page == "/approvals":
            assert f"#{ids['waiting']}" in body.decode(), "the waiting run is not on the approvals page"
        times = [client.get(page)[2] for _ in range(repeat)]
        p95 = sorted(times)[max(0, int(len(times) * 0.95) - 1)]
        worst = max(worst, max(times))
        print(f"  {page:<42} median {statistics.median(times):6.1f} ms  p95 {p95:6.1f} ms  "
              f"max {max(times):6.1f} ms  ({len(body) // 1024} KiB)")
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="loads of each page (default: %(default)s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlops-bench-studio-") as tmp:
        env, ids = build(Path(tmp))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = subprocess.Popen([sys.executable, "-m", "ml_service.cli", "studio", "--port", str(port)], env=env,
                                  cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            client = Client(f"http://127.0.0.1:{port}")
            deadline = time.monotonic() + 60
            while True:
                try:
                    client.log_in()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        sys.exit("the Studio did not start")
                    time.sleep(0.2)
            print(f"studio benchmark: {args.repeat} loads per page after one warm-up, {os.cpu_count()} cores, "
                  f"load average {os.getloadavg()[0]:.1f}, target < {TARGET_MS} ms")
            worst = time_pages(client, ids, args.repeat)
            print(f"slowest load: {worst:.1f} ms ({'under' if worst < TARGET_MS else 'OVER'} {TARGET_MS} ms)")
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
