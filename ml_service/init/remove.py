"""`mlops init --remove NAME`: undo an init. The project's folder, its data file and contract (unless another
project uses them), its pipeline files and its mlops.yml entry go; data folders left empty by that go too.

It refuses while a version of the project's registered model is live (a QA container, a production record, a
committed desired state): take it down first. The registry keeps the model's versions and runs.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ml_service.init import InitError
from ml_service.init.config_entry import remove_model
from ml_service.init.names import PIPELINE_KINDS
from ml_service.init.project import CONFIG_FILE, read_config


@dataclass
class Removal:
    """What removing a project deletes."""

    root: Path
    project: str
    model_name: str
    paths: list[Path] = field(default_factory=list)
    config_text: str = ""


def _shared(models: list, project: str, key: str, value: str) -> bool:
    return any(isinstance(m, dict) and m.get("project") != project and m.get(key) == value for m in models)


def plan_removal(root: Path, project: str) -> Removal:
    """The paths and the new mlops.yml text of removing project; InitError when it is not a project here."""
    root = Path(root).resolve()
    text, config = read_config(root)
    models = config.get("models") or []
    entry = next((m for m in models if isinstance(m, dict) and m.get("project") == project), None)
    if entry is None:
        raise InitError(f"{root / CONFIG_FILE}: no model project {project!r} under 'models:' (the projects are: "
                        f"{', '.join(str(m.get('project')) for m in models if isinstance(m, dict)) or 'none'})")
    removal = Removal(root, project, str(entry.get("name") or f"{project}_model"))
    removal.config_text = remove_model(text, project, str(root / CONFIG_FILE))
    candidates = [root / project]
    for key in ("data", "contract"):
        value = entry.get(key)
        if value and not _shared(models, project, key, value):
            candidates.append(root / value)
    candidates += [root / ".pipelines" / f"{project}-{kind}.yml" for kind in PIPELINE_KINDS]
    for path in candidates:
        resolved = path.resolve()
        if resolved == root or root not in resolved.parents:
            raise InitError(f"{path} is not inside {root}: not removing it; delete the project by hand")
        if path.exists():
            removal.paths.append(path)
    return removal


def live_places(settings, model_name: str) -> list[str]:
    """Where a version of model_name is live: deploy records (QA, production, desired states) and QA containers."""
    places = []
    uri = settings.tracking_uri
    if not uri.startswith("sqlite:///") or Path(uri[len("sqlite:///"):]).is_file():  # no store: nothing deployed
        from ml_service.deploy import records

        for version, where in sorted(records.live_versions(settings, model_name).items()):
            places += [f"version {version} in {place}" for place in sorted(where)]
    try:
        import docker

        from ml_service.deploy.qa import qa_containers

        client = docker.from_env(timeout=10)
        places += [f"QA container {c.name}" for c in qa_containers(client, settings, model_name)
                   if c.status == "running"]
    except Exception:  # no Docker engine here: the deploy records above still name a live QA version
        pass
    return places


def _remove_empty(folder: Path, root: Path) -> None:
    """folder and its parents while empty, below root (never .pipelines/: the platform's own)."""
    while folder != root and folder.name != ".pipelines" and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


def remove_project(removal: Removal) -> None:
    """Delete the planned paths, then write mlops.yml without the entry; folders left empty are removed."""
    for path in removal.paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
        _remove_empty(path.parent, removal.root)
    (removal.root / CONFIG_FILE).write_text(removal.config_text, encoding="utf-8")


def confirm_and_remove(root: Path, project: str, settings, yes: bool = False, ask=input, say=print) -> bool:
    """List what goes, refuse while the model is live, ask (unless yes), remove; False when the answer was no."""
    removal = plan_removal(root, project)
    live = live_places(settings, removal.model_name)
    if live:
        raise InitError(f"{removal.model_name} is live ({'; '.join(live)}): take it down first "
                        "(mlops deploy ...), then remove the project")
    say(f"removing model project {project} from {removal.root}:")
    for path in removal.paths:
        say(f"  {path.relative_to(removal.root).as_posix()}{'/' if path.is_dir() else ''}")
    say(f"  {CONFIG_FILE}: its entry under models: (registered model {removal.model_name}; the registry keeps "
        "its versions)")
    if not yes:
        try:
            answer = ask("remove all of this? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            say("nothing removed")
            return False
    remove_project(removal)
    say(f"removed model project {project}")
    return True
