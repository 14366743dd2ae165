"""Git facts about a source tree (commit, branch, dirty, remote, user): the one home for reading them.

Commands that change a repository (hooks, GitOps commits) run git themselves; anything that only
asks a question asks here.
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GitInfo:
    """Commit, branch and whether the work tree had uncommitted changes."""

    commit: str = ""
    branch: str = ""
    dirty: bool = False
    repo_url: str = ""

    def tags(self) -> dict[str, str]:
        """MLflow tags, with MLflow's own names where it has them."""
        if not self.commit:
            return {}
        tags = {
            "mlflow.source.git.commit": self.commit,
            "mlflow.source.git.branch": self.branch,
            "mlops.git.dirty": str(self.dirty).lower(),
        }
        if self.repo_url:
            tags["mlflow.source.git.repoURL"] = self.repo_url
        return tags


def git_output(root: Path, *args: str) -> str:
    """The stripped output of `git -C root ARGS`; "" when git fails or root is not a repository."""
    try:
        result = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def branch_and_commit(root: Path) -> tuple[str, str]:
    """(branch, commit) of a checkout; empty strings when it is not one."""
    return git_output(root, "rev-parse", "--abbrev-ref", "HEAD"), git_output(root, "rev-parse", "HEAD")


def user_email(root: Path) -> str:
    """git's user.email for root, or ""."""
    return git_output(root, "config", "user.email")


def read_git_info(root: Path) -> GitInfo:
    """Read git facts for root; an empty GitInfo when it is not a git checkout."""
    commit = git_output(root, "rev-parse", "HEAD")
    if not commit:
        return GitInfo()
    return GitInfo(
        commit=commit,
        branch=git_output(root, "rev-parse", "--abbrev-ref", "HEAD"),
        dirty=bool(git_output(root, "status", "--porcelain", "--untracked-files=no")),
        repo_url=git_output(root, "config", "--get", "remote.origin.url"),
    )
