"""Repository resources: `checkout: <alias>`, `checkout: git://project/repo@ref` and `template: file@alias`.

Azure fetches another repository through a service connection; here mlops.yml `ci.repositories` maps a
resource's alias, or its name (`project/repo`, the inline `git://project/repo`), to a local path or a git
URL, and the repository is cloned at the ref the resource names (default refs/heads/main:
yaml-schema resources-repositories-repository.md). An unmapped repository is an error before the run,
naming it, the file and line, and the mlops.yml key to add. The folder of a checkout follows the agent
(Agent.Sdk/Util/RepositoryUtil.cs GetCloneDirectory): the last segment of the repository's name.
"""
from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ml_service.errors import MLOpsError

DEFAULT_REF = "refs/heads/main"


class RepositoryError(MLOpsError):
    """A repository resource cannot be resolved or cloned; the message names it and what to do."""


@dataclass
class Repository:
    """A resolved repository: where to clone it from, at which ref, into which folder name."""

    alias: str
    name: str
    source: str
    ref: str

    @property
    def folder(self) -> str:
        """The clone folder's name: the repository name's last path segment (RepositoryUtil.GetCloneDirectory)."""
        return self.name.rstrip("/").rsplit("/", 1)[-1] or self.alias


def declared(document: dict) -> dict[str, dict]:
    """alias -> the resources.repositories entry of a compiled pipeline."""
    resources = (document.get("resources") or {}) if isinstance(document, dict) else {}
    if not isinstance(resources, dict):  # the old list form (`resources: - repo: self`) declares no repository
        return {}
    return {str(r.get("repository")): r for r in resources.get("repositories") or []
            if isinstance(r, dict) and r.get("repository")}


def resolve(reference: str, resources: dict[str, dict], mapping: dict, where: str) -> Repository:
    """The repository a checkout value or template alias names (an alias of resources.repositories, or the
    inline git://project/repo@ref); RepositoryError when mlops.yml does not map it."""
    mapping = {str(k): str(v) for k, v in (mapping or {}).items()}
    if reference.startswith("git://"):
        body = reference[len("git://"):]
        name, _, ref = body.partition("@")
        alias, entry = name.rsplit("/", 1)[-1], {"name": name, "ref": ref or DEFAULT_REF}
    else:
        alias = reference
        if alias not in resources:
            raise RepositoryError(f"{where}: repository '{alias}' is not declared in resources.repositories "
                                  f"(declared: {', '.join(sorted(resources)) or 'none'})")
        entry = resources[alias]
        name = str(entry.get("name") or alias)
    ref = str(entry.get("ref") or DEFAULT_REF)
    source = mapping.get(alias) if alias in mapping else mapping.get(name)
    if source is None:
        source = mapping.get(name.rsplit("/", 1)[-1])
    if source is None:
        raise RepositoryError(f"{where}: repository '{reference}' ({name}) cannot be fetched here: Azure fetches it "
                              f"through a service connection. Map it in mlops.yml: ci: {{repositories: {{{alias}: "
                              "<local path or git URL>}} (the key may also be the repository's name "
                              f"'{name}')")
    return Repository(alias, name, source, ref)


def _git(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def clone(repo: Repository, dest: Path) -> Path:
    """Clone repo at its ref into dest (replaced if it exists); the clone's path."""
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    done = _git("clone", "--quiet", "--no-checkout", repo.source, str(dest))
    if done.returncode != 0:
        raise RepositoryError(f"repository '{repo.alias}': git clone {repo.source} failed: {done.stderr.strip()}")
    ref = repo.ref
    short = ref.removeprefix("refs/heads/")
    candidates = [f"origin/{short}"] if ref.startswith("refs/heads/") else [ref.removeprefix("refs/tags/"), ref]
    candidates.append(ref)
    for candidate in candidates:
        if _git("checkout", "--quiet", "--detach", candidate, cwd=dest).returncode == 0:
            return dest
    raise RepositoryError(f"repository '{repo.alias}' ({repo.source}) has no ref {ref}")


def clone_commit(source: Path, commit: str, dest: Path) -> Path:
    """A clean clone of the pipeline's own repository at commit (checkout: self beside other repositories)."""
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    done = _git("clone", "--quiet", "--no-checkout", str(source), str(dest))
    if done.returncode != 0 or _git("checkout", "--quiet", "--detach", commit or "HEAD", cwd=dest).returncode != 0:
        raise RepositoryError(f"checkout self: cannot clone {source} at {commit or 'HEAD'}: {done.stderr.strip()}")
    return dest


class Templates:
    """Where `template: file@alias` is read from at compile time: a clone of the resource at its ref, made
    once per compile under cache."""

    def __init__(self, mapping: dict, cache: Path):
        self.mapping = mapping or {}
        self.cache = Path(cache)
        self.resources: dict[str, dict] = {}
        self.clones: dict[str, Path] = {}

    def root(self, alias: str, where: str) -> Path:
        """The folder of the repository alias names (cloned on first use)."""
        repo = resolve(alias, self.resources, self.mapping, where)
        key = hashlib.sha256(f"{repo.source}@{repo.ref}".encode()).hexdigest()[:16]
        if key not in self.clones:
            self.clones[key] = clone(repo, self.cache / f"{repo.folder}-{key}")
        return self.clones[key]
