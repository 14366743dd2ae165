"""Shared helpers of the CI engine's tests: a workspace in tmp_path, a pipeline run in-process, what it left."""
from __future__ import annotations

from pathlib import Path

from ml_service.ci.server import service
from ml_service.config import load_settings

FIXTURES = Path(__file__).parent / "fixtures"


def make_project(tmp_path: Path, monkeypatch, mlops_yml: str = "models:\n  - {project: p, name: m}\n",
                 user: str = "dev@example.com"):
    """Settings of a workspace in tmp_path (mlops.yml as given, state under tmp_path/state)."""
    (tmp_path / "mlops.yml").write_text(mlops_yml)
    monkeypatch.setenv("MLOPS_ROOT", str(tmp_path))
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MLOPS_USER", user)
    for name in ("MLOPS_MODEL", "MLOPS_TOKEN"):  # e.g. set by the pipeline that runs these tests
        monkeypatch.delenv(name, raising=False)
    return load_settings()


def run_text(settings, text: str, name: str = "pipeline.yml", params: dict | None = None):
    """Write a pipeline file under the project, queue it and run it here; (store, run)."""
    path = settings.root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    store = service.open_store(settings)
    run_id = service.queue(settings, store, path, "Manual", params or {})
    service.execute(settings, store, run_id)
    return store, store.get_run(run_id)


def records(store, run_id: int) -> dict[str, dict]:
    """The run's records by display name."""
    return {r["display"]: r for r in store.records(run_id)}


def log_of(store, run_id: int, display: str) -> str:
    """The log of the step with that display name ('' when it wrote none)."""
    record = records(store, run_id)[display]
    path = Path(record["log"]) if record["log"] else None
    return path.read_text() if path and path.exists() else ""


def all_logs(store, run_id: int) -> str:
    """Every step log of a run, in order."""
    return "".join(Path(r["log"]).read_text() for r in store.records(run_id) if r["log"] and Path(r["log"]).exists())


def every_stored_byte(state_dir: Path, root: Path | None = None) -> str:
    """Every file the engine wrote (run database, logs, artifacts, state), as text. A run's checkout
    (ci/work/<run>/s) holds copies of the project's own files: one equal to the project's file at the same path
    (root: the project, by default the state folder's parent) is the project's text, not something stored."""
    state_dir = Path(state_dir)
    root = Path(root or state_dir.parent)

    def copied(path: Path) -> bool:
        parts = path.relative_to(state_dir).parts
        if len(parts) < 5 or parts[:2] != ("ci", "work") or parts[3] != "s":
            return False
        original = root.joinpath(*parts[4:])
        return original.is_file() and original.read_bytes() == path.read_bytes()
    return "".join(p.read_bytes().decode(errors="replace") for p in state_dir.rglob("*")
                   if p.is_file() and not copied(p))
