"""`git push` triggers: a post-receive hook on a bare repository queues the pipelines a push matches.

`mlops ci hooks install` creates the bare repository under .mlops/ci/remote.git (or uses one you
name), adds it as the remote `mlops` of the project, and installs the hook. The hook starts
`mlops ci on-push` in the background with its output in .mlops/ci/hooks.log, so the push returns
at once. A push to the default branch runs the pipelines whose `trigger:` matches; a push to any
other branch is treated as an update of a pull request into the default branch and runs the
pipelines whose `pr:` matches.
"""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

from ml_service.ci.model import triggers
from ml_service.ci.server import service
from ml_service.config import PACKAGE_ROOT, Settings

ZERO = "0" * 40
DEFAULT_BRANCH = "main"

HOOK = """#!/bin/sh
# Installed by `mlops ci hooks install`: queue the pipelines this push triggers, in the background, with the
# platform that installed the hook (python -m runs the ml_service of the folder it starts in).
updates=$(cat)
repo=$(pwd)
cd {platform} && MLOPS_ROOT={root} MLOPS_STATE_DIR={state} nohup {python} -m ml_service.cli ci on-push \\
  --repo "$repo" --updates "$updates" >> {log} 2>&1 < /dev/null &
echo "mlops ci: pipelines for this push are queued in the background (mlops ci list)"
"""


def _git(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)


def install(settings: Settings, remote: Path | None = None, work_repo: Path | None = None) -> Path:
    """Create (if needed) the bare repository, install the hook, add the `mlops` remote to work_repo
    (default: the project). Returns the bare repository's path."""
    repo = Path(remote) if remote else settings.state_dir / "ci" / "remote.git"
    if not (repo / "HEAD").exists():
        repo.parent.mkdir(parents=True, exist_ok=True)
        result = _git("init", "--quiet", "--bare", "--initial-branch", DEFAULT_BRANCH, str(repo))
        if result.returncode != 0:
            raise service.CIError(f"git init --bare {repo} failed: {result.stderr.strip()}")
    log = settings.state_dir / "ci" / "hooks.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    hook = repo / "hooks" / "post-receive"
    hook.write_text(HOOK.format(root=shlex.quote(str(settings.root)), state=shlex.quote(str(settings.state_dir)),
                                python=shlex.quote(sys.executable), log=shlex.quote(str(log)),
                                platform=shlex.quote(str(PACKAGE_ROOT))))
    hook.chmod(0o755)
    work_repo = Path(work_repo or settings.root)
    if (work_repo / ".git").exists():
        existing = _git("remote", "get-url", "mlops", cwd=work_repo)
        verb = "set-url" if existing.returncode == 0 else "add"
        _git("remote", verb, "mlops", str(repo), cwd=work_repo)
    return repo


def changed_paths(repo: Path, old: str, new: str) -> list[str] | None:
    """Files changed by the push; None when unknown (a new branch)."""
    if old == ZERO:
        return None
    result = _git("diff", "--name-only", old, new, cwd=repo)
    return [line for line in result.stdout.splitlines() if line] if result.returncode == 0 else None


def checkout(repo: Path, commit: str, dest: Path) -> Path:
    """A working copy of commit from the bare repository."""
    if not (dest / ".git").exists():
        result = _git("clone", "--quiet", str(repo), str(dest))
        if result.returncode != 0:
            raise service.CIError(f"git clone {repo} failed: {result.stderr.strip()}")
    result = _git("checkout", "--quiet", "--force", commit, cwd=dest)
    if result.returncode != 0:
        raise service.CIError(f"git checkout {commit} failed: {result.stderr.strip()}")
    return dest


def matching_pipelines(source: Path, branch: str, changed: list[str] | None) -> list[tuple[Path, str]]:
    """(pipeline file, reason) for every pipeline this push triggers. A file that does not read as a pipeline
    (malformed YAML) is triggered too, as Azure does: its run fails at once saying where the file is wrong, instead
    of the push passing it by in silence."""
    found = []
    unreadable: list[Path] = []
    for _, path, document in service.pipeline_documents(source, unreadable):
        if branch == DEFAULT_BRANCH:
            if triggers.trigger_matches(document.get("trigger"), branch, changed):
                found.append((path, "IndividualCI"))
        elif triggers.trigger_matches(document.get("pr"), DEFAULT_BRANCH, changed):
            found.append((path, "PullRequest"))
    reason = "IndividualCI" if branch == DEFAULT_BRANCH else "PullRequest"
    return sorted(found + [(path, reason) for path in unreadable])


def on_push(settings: Settings, repo: Path, updates: str, report=None) -> list[int]:
    """Handle the lines 'old new ref' a post-receive hook reads; run what they trigger. Returns run ids."""
    import os

    for key in [k for k in os.environ if k.startswith("GIT_")]:  # the hook's GIT_DIR=. must not leak into
        del os.environ[key]                                        # our git calls or the pipelines' steps
    repo = Path(repo).resolve()
    store = service.open_store(settings)
    ran: list[int] = []
    for line in updates.strip().splitlines():
        parts = line.split()
        if len(parts) != 3 or not parts[2].startswith("refs/heads/") or parts[1] == ZERO:
            continue
        old, new, ref = parts
        branch = ref[len("refs/heads/"):]
        changed = changed_paths(repo, old, new)
        folder = re.sub(r"[^A-Za-z0-9._-]", "_", branch)[:80]  # a branch name is anyone's text: never in a path
        source = checkout(repo, new, settings.state_dir / "ci" / "checkouts" / f"{folder}-{new[:12]}")
        for path, reason in matching_pipelines(source, branch, changed):
            run_id = service.queue(settings, store, path, reason, {}, source, branch, new)
            print(f"queued run {run_id}: {path.stem} ({reason}) for {branch}@{new[:8]}", flush=True)
            try:
                ran += service.execute(settings, store, run_id, report)
            except service.CIError as exc:
                print(f"run {run_id} failed: {exc}", flush=True)
            except Exception as exc:  # one run's crash never costs the push its other runs
                print(f"run {run_id} failed: internal error {type(exc).__name__}: {exc}", flush=True)
    return ran
