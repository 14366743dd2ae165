"""Git facts about the source tree a run was made from."""
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


def _git(root: Path, *args: str) -> str:
    result = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)
    return result.stdout.strip() if result.returncode == 0 else ""


def read_git_info(root: Path) -> GitInfo:
    """Read git facts for root; an empty GitInfo when it is not a git checkout."""
    commit = _git(root, "rev-parse", "HEAD")
    if not commit:
        return GitInfo()
    return GitInfo(
        commit=commit,
        branch=_git(root, "rev-parse", "--abbrev-ref", "HEAD"),
        dirty=bool(_git(root, "status", "--porcelain", "--untracked-files=no")),
        repo_url=_git(root, "config", "--get", "remote.origin.url"),
    )
