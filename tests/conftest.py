"""Shared fixtures of the platform's tests. Every workspace is a real MLflow sqlite store in a temp folder.

The platform's tests name no model project: the ones that need one use the default project of
mlops.yml (`load_settings().model`), whatever it is.

`make test` never passes by skipping: a skipped test is reported as an error, unless it carries one of
the marks in SKIP_ALLOWED (things that cannot exist on the machines this is built on). A missing tool is
never a reason to skip: the test fails with the command that installs it.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

from ml_service.config import PACKAGE_ROOT, load_settings

ROOT = PACKAGE_ROOT
DOCKER_SETUP = "bash environment_setup/docker_engine.sh"
# The only marks under which a test may skip: what cannot exist here (README, "Testing").
SKIP_ALLOWED = {
    "needs_cluster": "needs a real Kubernetes API server (none can run on these machines)",
    "needs_azure_devops": "needs the hosted Azure DevOps service (no account on these machines)",
}


# `make test` runs pytest processes side by side (MLOPS_TEST_GROUP): `docker` takes the tests marked `docker`
# (one engine: their containers and images never race), `slow` the rest of those marked `slow` (they run their own
# servers for minutes), `foreground/<i>/<n>` the i-th of n shares of all the others (`foreground`: all of them).
# `all/<i>/<n>` is the i-th of n shares of every test: the modules holding a docker test all in share 1, the others
# balanced around them. A share holds whole modules (their module fixtures stay in one process), balanced by the
# seconds each module took (tests/durations.json, from tools/durations.py; a module not in it counts
# DEFAULT_SECONDS). Unset: every test.
GROUP = pytest.StashKey[str]()
DURATIONS = Path(__file__).with_name("durations.json")
DEFAULT_SECONDS = 10.0


def group_of(item) -> str:
    """The process of `make test` a test runs in: docker, slow or foreground."""
    if item.get_closest_marker("docker") is not None:
        return "docker"
    return "slow" if item.get_closest_marker("slow") is not None else "foreground"


def shares(modules: list[str], count: int, seconds: dict[str, float], first: float = 0.0) -> dict[str, int]:
    """module -> share (1..count): the longest module first, each to the share with the fewest seconds so far
    (share 1 starting with `first` seconds already in it)."""
    load = [first] + [0.0] * (count - 1)
    chosen = {}
    for module in sorted(modules, key=lambda m: (-seconds.get(m, DEFAULT_SECONDS), m)):
        share = min(range(count), key=lambda i: (load[i], i))
        chosen[module] = share + 1
        load[share] += seconds.get(module, DEFAULT_SECONDS)
    return chosen


def selected(group: str, items: list) -> list:
    """The items of a MLOPS_TEST_GROUP value (docker, slow, foreground, foreground/<i>/<n>, all/<i>/<n>; background:
    docker+slow)."""
    name, _, share = group.partition("/")
    if name == "background":
        return [item for item in items if group_of(item) != "foreground"]
    mine = items if name == "all" else [item for item in items if group_of(item) == name]
    if not share:
        return mine
    index, count = (int(part) for part in share.split("/"))
    seconds = json.loads(DURATIONS.read_text()) if DURATIONS.is_file() else {}
    module = {id(item): item.nodeid.split("::")[0] for item in mine}
    pinned = {module[id(item)] for item in mine if name == "all" and group_of(item) == "docker"}
    chosen = shares(sorted(set(module.values()) - pinned), count, seconds,
                    first=sum(seconds.get(m, DEFAULT_SECONDS) for m in pinned))
    chosen.update((m, 1) for m in pinned)
    return [item for item in mine if chosen[module[id(item)]] == index]


def pytest_collection_modifyitems(config, items):
    group = config.stash.get(GROUP, "")
    if not group:
        return
    if not re.fullmatch(r"(docker|slow|background|foreground|(foreground|all)/[1-9][0-9]*/[1-9][0-9]*)", group):
        raise pytest.UsageError(f"MLOPS_TEST_GROUP={group!r}: expected docker, slow, background, foreground, "
                                "foreground/<i>/<n> or all/<i>/<n>")
    keep = selected(group, items)
    kept = {id(item) for item in keep}
    dropped = [item for item in items if id(item) not in kept]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def pytest_configure(config):
    config.stash[GROUP] = os.environ.pop("MLOPS_TEST_GROUP", "")  # not inherited by the tests' own pytest runs
    # `make test` starts its other pytest processes with `&`, and a non-interactive shell starts those with Ctrl-C
    # (SIGINT) ignored, which every subprocess inherits: a test's Ctrl-C to an `mlops pipeline run` did nothing
    # there (CI, stop 31). A handler, unlike an ignored signal, is not inherited across exec.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    for name, why in SKIP_ALLOWED.items():
        config.addinivalue_line("markers", f"{name}: {why}; the only kind of test that may skip")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A skip is an error unless the test is marked with one of SKIP_ALLOWED (xfail is not a skip)."""
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    if any(item.get_closest_marker(name) for name in SKIP_ALLOWED):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = (f"{item.nodeid} skipped ({reason}), and a skip is an error here: fix what is missing, or mark "
                       f"the test with one of {', '.join(sorted(SKIP_ALLOWED))} if it needs something that cannot "
                       "exist on these machines (tests/conftest.py)")


def workspace_env(state_dir: Path) -> dict[str, str]:
    """Environment that points the project at a workspace under state_dir."""
    return {"MLOPS_ROOT": str(ROOT), "MLOPS_STATE_DIR": str(state_dir), "MLFLOW_DISABLE_TELEMETRY": "true"}


def fresh_store(target: Path) -> str:
    """A new, empty MLflow sqlite store at target: a copy of one created once per MLflow version (creating
    the tables takes seconds, copying the file milliseconds; the mutation tester runs these tests per mutant)."""
    import mlflow

    template = Path(tempfile.gettempdir()) / f"mlops-tests-empty-mlflow-{mlflow.__version__}.db"
    if not template.is_file():
        building = template.with_name(f"{template.name}.{os.getpid()}")
        uri = f"sqlite:///{building}"
        mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri).search_experiments()
        os.replace(building, template)
    shutil.copy(template, target)
    return f"sqlite:///{target}"


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """Settings for a fresh, empty workspace in a temp dir (environment patched for subprocesses too)."""
    for key, value in workspace_env(tmp_path / "ws").items():
        monkeypatch.setenv(key, value)
    for key in ("MLOPS_TRACKING_URI", "MLOPS_ARTIFACT_ROOT", "MLOPS_BUILD_ID", "MLOPS_BUILD_URI", "MLOPS_MODEL",
                "MLOPS_MODEL_NAME", "MLOPS_EXPERIMENT"):
        monkeypatch.delenv(key, raising=False)
    return load_settings()


@pytest.fixture(scope="session")
def docker_engine():
    """A Docker SDK client. Without an engine the test fails with the one command that sets it up."""
    from ml_service.containers import ImageError, docker_client

    try:
        return docker_client()
    except ImageError as exc:
        pytest.fail(f"no Docker engine ({exc}); set it up with: {DOCKER_SETUP}", pytrace=False)


@pytest.fixture(scope="session")
def image_registry(tmp_path_factory, docker_engine):
    """A real image registry (Debian's docker-registry, the CNCF distribution server) on 127.0.0.1.

    Without the binary the test fails with the command that installs it (with the engine).
    """
    import shutil
    import socket
    import subprocess
    import time
    import urllib.request

    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.fail(f"docker-registry is not installed; install it with: {DOCKER_SETUP}", pytrace=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = tmp_path_factory.mktemp("registry")
    config = base / "config.yml"
    config.write_text(f"version: 0.1\nlog: {{level: warn}}\nstorage: {{filesystem: {{rootdirectory: {base}/data}}}}\n"
                      f"http: {{addr: '127.0.0.1:{port}'}}\n")
    log = open(base / "registry.log", "w")
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"the registry did not start: {(base / 'registry.log').read_text()[-2000:]}")
            time.sleep(0.2)
    yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)
    log.close()
