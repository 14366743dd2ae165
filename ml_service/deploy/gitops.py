"""The GitOps target of production: a git repository (a folder of it, or a branch) holding each model's
desired state, which Argo CD or Flux applies. Files are written and removed in one commit; what the
target holds is read back from its commits, never from a work tree someone may be editing.

mlops.yml `environments.production.gitops`: `repo` (created if missing; default <state_dir>/gitops),
`branch` (set: commit to it with git plumbing, work tree untouched, bare repositories too; empty:
the repository's current branch), `values_file` ({model}: the registered model's name).
"""
from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from ml_service.config import Settings
from ml_service.sections import Environment
from ml_service.deploy.qa import DeployError


def production_config(settings: Settings) -> Environment:
    """environments.production from mlops.yml (its defaults when it has none)."""
    return settings.environments.get("production") or Environment("production")


def for_model(template: str, model_name: str) -> str:
    """A configured name with {model} replaced by the registered model's name."""
    return template.replace("{model}", model_name)


def gitops_target(settings: Settings, model_name: str) -> tuple[Path, str, str]:
    """(git repository, values file inside it, branch or "") from environments.production.gitops in mlops.yml;
    {model} in values_file is the registered model's name, so each model has its own desired state."""
    config = production_config(settings).gitops
    repo = Path(config.repo or settings.state_dir / "gitops")
    repo = repo if repo.is_absolute() else settings.root / repo
    return repo, for_model(config.values_file, model_name), config.branch


def git(repo: Path, *args: str, identity: str = "", stdin: str | None = None,
        env: dict | None = None) -> subprocess.CompletedProcess:
    """git in repo, output captured; commits by `mlops` with the identity as e-mail."""
    who = ["-c", "user.name=mlops", "-c", f"user.email={identity or 'mlops@localhost'}"]
    return subprocess.run(["git", "-C", str(repo), *who, *args], capture_output=True, text=True, input=stdin,
                          env={**os.environ, **env} if env else None)


def is_repository(repo: Path) -> bool:
    """A work tree with .git, or a bare repository (not merely a folder inside some other repository)."""
    return (repo / ".git").exists() or ((repo / "HEAD").is_file() and (repo / "objects").is_dir())


def read(settings: Settings, model_name: str, rel: str) -> tuple[str | None, str]:
    """(text of rel as committed in the target, or None; the commit) for the model's target."""
    repo, _, branch = gitops_target(settings, model_name)
    if not is_repository(repo):
        return None, ""
    rev = branch or "HEAD"
    commit = git(repo, "rev-parse", "-q", "--verify", f"{rev}^{{commit}}").stdout.strip()
    if not commit:
        return None, ""
    shown = git(repo, "show", f"{commit}:{rel}")
    return (shown.stdout if shown.returncode == 0 else None), commit


def last_commit(settings: Settings, model_name: str, commit: str, paths: list[str]) -> str:
    """The newest commit, at or before commit, that changed one of paths (the model's own desired state): other
    models commit to the same target, and their commits say nothing about this model."""
    repo, _, _ = gitops_target(settings, model_name)
    found = git(repo, "log", "-1", "--format=%H", commit, "--", *paths).stdout.strip()
    return found or commit


def commit_info(settings: Settings, model_name: str, commit: str) -> dict:
    """The author time (ISO 8601) and subject of a commit of the target."""
    repo, _, _ = gitops_target(settings, model_name)
    fields = git(repo, "log", "-1", "--format=%aI%n%s", commit).stdout.splitlines()
    return {"commit": commit, "time": fields[0] if fields else "", "subject": fields[1] if len(fields) > 1 else ""}


def _commit_to_branch(repo: Path, branch: str, files: dict[str, str | None], message: str,
                      who: str) -> tuple[str, str]:
    """Commit files ({path: text, or None to remove it}) to `branch` with git plumbing: no checkout, the work
    tree and HEAD stay as they are."""
    ref = f"refs/heads/{branch}"
    if git(repo, "check-ref-format", ref).returncode != 0:
        raise DeployError(f"environments.production.gitops.branch: {branch!r} is not a valid branch name")
    if git(repo, "symbolic-ref", "-q", "HEAD").stdout.strip() == ref and (repo / ".git").exists():
        raise DeployError(f"the GitOps branch {branch!r} is checked out in {repo}; committing to it behind the work "
                          "tree's back would be confusing: check out another branch or leave gitops.branch empty")
    parent = git(repo, "rev-parse", "-q", "--verify", f"{ref}^{{commit}}").stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        index = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        if parent:
            git(repo, "read-tree", parent, env=index)
        for rel, text in files.items():
            if text is None:
                git(repo, "update-index", "--force-remove", rel, env=index)
                continue
            blob = git(repo, "hash-object", "-w", "--stdin", stdin=text).stdout.strip()
            git(repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},{rel}", env=index)
        tree = git(repo, "write-tree", env=index).stdout.strip()
    if parent and tree == git(repo, "rev-parse", f"{parent}^{{tree}}").stdout.strip():
        return parent, "unchanged"
    made = git(repo, "commit-tree", tree, *(["-p", parent] if parent else []), "-m", message, identity=who)
    commit = made.stdout.strip()
    # compare-and-swap: a concurrent deploy that moved the branch meanwhile makes this fail, not vanish
    moved = git(repo, "update-ref", "-m", message.splitlines()[0], ref, commit, parent or "0" * 40) \
        if made.returncode == 0 else made
    if moved.returncode != 0:
        raise DeployError(f"committing to branch {branch!r} of {repo} failed: {moved.stderr.strip()}")
    return commit, "committed"


def commit_files(settings: Settings, model_name: str, files: dict[str, str | None], message: str,
                 who: str) -> tuple[str, str]:
    """Write (text) or remove (None) these files of the model's target in one commit: (commit,
    committed|unchanged). Without gitops.branch the files are written in the repository's work tree and only
    they are committed on its current branch; with one, they are committed to that branch without touching the
    work tree."""
    repo, _, branch = gitops_target(settings, model_name)
    if not is_repository(repo):
        repo.mkdir(parents=True, exist_ok=True)
        if git(repo, "init", "-q", "-b", "main").returncode != 0:
            raise DeployError(f"cannot create the GitOps repository {repo}")
    if branch:
        return _commit_to_branch(repo, branch, files, message, who)
    if not (repo / ".git").exists():
        raise DeployError(f"{repo} is a bare repository: set environments.production.gitops.branch to commit to it")
    tracked = set(git(repo, "ls-files", "--", *files).stdout.split())
    paths = [rel for rel, text in files.items() if text is not None or rel in tracked]
    for rel, text in files.items():
        if text is not None:
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            (repo / rel).write_text(text)
        elif rel in tracked:
            git(repo, "rm", "-q", "--cached", "--", rel)
            (repo / rel).unlink(missing_ok=True)
    git(repo, "add", *[rel for rel in paths if files[rel] is not None])
    if git(repo, "diff", "--cached", "--quiet", "--", *paths).returncode == 0:
        return git(repo, "rev-parse", "HEAD").stdout.strip(), "unchanged"
    # only these files: whatever else the owner of the repository has staged stays staged, uncommitted
    done = git(repo, "commit", "-q", "-m", message, "--", *paths, identity=who)
    if done.returncode != 0:
        raise DeployError(f"git commit in {repo} failed: {done.stderr.strip()}")
    return git(repo, "rev-parse", "HEAD").stdout.strip(), "committed"
