"""The sources a run's steps see: their own clean copy in $(Pipeline.Workspace)/s, never the user's working tree.

Azure's agent lays out a pipeline's work folder as {a, b, s, TestResults} (Agent.Worker/Build/TrackingConfig.cs,
Constants.Build.Path): s = Build.SourcesDirectory = System.DefaultWorkingDirectory, the working directory of a
script step, a clean checkout of the commit being built. Here (issue 23 item 2):

- What s/ holds is decided when the run is queued (`describe`) and kept in the run's state ("checkout"):
  - a run of a given commit (the git hook's pushed commit, a schedule, a chained run): that commit, clean;
  - a run of a working tree (`mlops ci run`, `make run`): its HEAD, plus its uncommitted changes when it has
    any (tracked changes and untracked files that git does not ignore; never the engine's state folder or a
    virtual environment): the tree `git add -A` would commit, written with a temporary index (the user's index,
    HEAD and files are not touched), like `git stash create`. The checkout is at HEAD with that tree in its
    index and files, so `git status` there shows the changes, and what the steps record (commit, dirty) is
    what the working tree would have said;
  - a folder that is not a git repository: a snapshot of its files (its .gitignore files apply) kept in
    <state>/ci/snapshots.git, extracted without a .git.
- `prepare` makes s/ a clean copy for each job that checks out self (as on a Microsoft-hosted agent, every
  job starts clean: `clean:` has nothing more to clean): a local `git clone --no-checkout` (objects are
  hard-linked on one file system, loose ones such as a snapshot's included) and a checkout; a later job of the
  run reuses that clone with `read-tree --reset` and `git clean -ffdx` when its HEAD is still the run's commit.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ml_service.errors import MLOpsError

SNAPSHOTS = "snapshots.git"  # under <state>/ci: the snapshots of project folders that are not git repositories
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


class SourcesError(MLOpsError):
    """The run's sources cannot be made; the message says which commit or folder, and why."""


def prepare_directories(variables: dict, clean: str = "") -> None:
    """A job's directories as the agent makes them when the job starts (Agent.Worker/Build/BuildDirectoryManager.cs
    PrepareDirectory): $(Build.ArtifactStagingDirectory) and $(Common.TestResultsDirectory) are deleted and made
    again for every job ("always deleted and recreated prior to every build", phases.md "Workspace"), so a job
    never finds what an earlier job left there; `workspace: clean: outputs` empties $(Build.BinariesDirectory),
    `all` the whole $(Pipeline.Workspace) (`resources`: the sources, which every job here gets clean anyway)."""
    def fresh(folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)

    workspace = Path(variables["Pipeline.Workspace"].value)
    if clean == "all":
        for entry in list(workspace.iterdir()) if workspace.is_dir() else []:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        for sub in ("a", "b", "s", "_temp", "TestResults"):
            (workspace / sub).mkdir(parents=True, exist_ok=True)
    fresh(Path(variables["Build.ArtifactStagingDirectory"].value))
    fresh(Path(variables["Common.TestResultsDirectory"].value))
    if clean == "outputs":
        fresh(Path(variables["Build.BinariesDirectory"].value))


def _git(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


def _excludes(root: Path, leave_out: list[Path], env: dict) -> list[str]:
    """Pathspecs that keep the engine's state folder, virtual environments and local secret files (.env, .env.*:
    never in a snapshot, as in docs/ci.md "Secrets"; a committed one stays as committed) out of a snapshot of
    root. Paths git ignores need none (git refuses a pathspec naming an ignored path)."""
    specs = [":(exclude,glob)**/.env", ":(exclude,glob)**/.env.*"]
    for folder in [*leave_out, *(p for p in root.iterdir() if (p / "pyvenv.cfg").is_file())]:
        try:
            relative = Path(folder).resolve().relative_to(root.resolve())
        except (ValueError, OSError):
            continue
        if str(relative) != "." and _git("check-ignore", "-q", f"{relative}/", cwd=root, env=env).returncode != 0:
            specs.append(f":(exclude){relative}")
    return specs


def work_tree(root: Path, leave_out: list[Path] | None = None, git_dir: Path | None = None) -> str:
    """The git tree id of root as it is now: tracked files with their uncommitted changes and untracked files
    that are not ignored (leave_out and virtual environments aside). The index and HEAD are left as they were;
    "" when root is not in a git repository (and no git_dir is given) or git fails."""
    root = Path(root)
    found = git_dir or (_git("rev-parse", "--absolute-git-dir", cwd=root).stdout.strip()
                        if root.is_dir() else "")
    if not found:
        return ""
    with tempfile.TemporaryDirectory() as scratch:
        index = Path(scratch) / "index"
        if (Path(found) / "index").is_file():
            shutil.copyfile(Path(found) / "index", index)  # its stat cache spares hashing unchanged files
        env = {"GIT_INDEX_FILE": str(index)}
        if git_dir:
            env.update({"GIT_DIR": str(git_dir), "GIT_WORK_TREE": str(root)})
        added = _git("add", "-A", "--", ".", *_excludes(root, leave_out or [], env), cwd=root, env=env)
        tree = _git("write-tree", cwd=root, env=env)
    return tree.stdout.strip() if added.returncode == 0 and tree.returncode == 0 else ""


def describe(source_dir: Path, state_dir: Path, commit: str = "") -> dict:
    """What the checkout of a run queued from source_dir holds: {"commit": C} (a commit, clean), plus
    "tree": T when the working tree differs from C (its uncommitted changes), or {"tree": T, "objects": path}
    for a folder that is not a git repository (whatever commit is given: there is no repository to take it
    from). commit given in a repository: that commit, nothing else."""
    source_dir = Path(source_dir)
    state_dir = Path(state_dir)
    in_git = source_dir.is_dir() and _git("rev-parse", "--git-dir", cwd=source_dir).returncode == 0
    if commit and in_git:
        return {"commit": commit}
    if in_git:
        head = _git("rev-parse", "--verify", "-q", "HEAD", cwd=source_dir).stdout.strip()
        tree = work_tree(source_dir, [state_dir])
        committed = _git("rev-parse", "--verify", "-q", "HEAD^{tree}", cwd=source_dir).stdout.strip() if head else ""
        if not tree:
            raise SourcesError(f"cannot read the working tree of {source_dir} (git add -A failed)")
        found = {"commit": head} if tree == committed else {"commit": head, "tree": tree}
        prefix = _git("rev-parse", "--show-prefix", cwd=source_dir).stdout.strip().rstrip("/")
        return {**found, "prefix": prefix} if prefix else found  # the project is a folder of its repository
    objects = state_dir / "ci" / SNAPSHOTS
    if not (objects / "HEAD").is_file():
        _create_bare(objects)
    if not source_dir.is_dir():
        raise SourcesError(f"the run's sources {source_dir} are not a folder")
    tree = work_tree(source_dir, [state_dir], git_dir=objects)
    if not tree:
        raise SourcesError(f"cannot take a snapshot of {source_dir} into {objects}")
    return {"tree": tree, "objects": str(objects), **({"commit": commit} if commit else {})}


def _create_bare(objects: Path) -> None:
    """A bare repository at objects, made aside and renamed into place: runs queued at once by several processes
    never see a half-made one (a concurrent `git init` fails on the config lock)."""
    objects.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=objects.parent, prefix=f".{objects.name}-"))
    try:
        made = _git("init", "--quiet", "--bare", str(scratch))
        if made.returncode != 0:
            raise SourcesError(f"cannot create {objects}: {made.stderr.strip()}")
        try:
            scratch.rename(objects)
        except OSError:  # another process made it first
            if not (objects / "HEAD").is_file():
                raise SourcesError(f"cannot create {objects}: it exists and is not a git repository") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def summary(checkout: dict) -> str:
    """One line for people: which commit or snapshot the run's steps ran on."""
    commit, tree = checkout.get("commit", ""), checkout.get("tree", "")
    if checkout.get("objects"):
        return f"a snapshot of a folder that is not a git repository (tree {tree[:12]})"
    if tree:
        return f"{commit[:12] or 'no commit yet'} plus the working tree's uncommitted changes (tree {tree[:12]})"
    return f"commit {commit[:12]}" if commit else "nothing (no commit)"


@dataclass(frozen=True)
class Options:
    """What a checkout step asks of the clone (yaml-schema steps-checkout.md): fetchDepth (0: the whole
    history), submodules ('', 'true' or 'recursive'), lfs."""

    depth: int = 0
    submodules: str = ""
    lfs: bool = False
    sparse_directories: tuple[str, ...] = ()  # cone mode (sparseCheckoutDirectories, space-separated)
    sparse_patterns: tuple[str, ...] = ()  # non-cone (sparseCheckoutPatterns, one a line; wins over directories)

    @classmethod
    def of(cls, step: dict) -> "Options":
        """The options of a checkout step mapping (values checked before the run: preflight.py)."""
        depth = str(step.get("fetchDepth", "") or "0").strip()
        modules = str(step.get("submodules", "false")).strip().lower()
        return cls(int(depth) if depth.isdigit() else 0, modules if modules in ("true", "recursive") else "",
                   str(step.get("lfs", "false")).strip().lower() == "true",
                   tuple(str(step.get("sparseCheckoutDirectories") or "").split()),
                   tuple(line.strip() for line in str(step.get("sparseCheckoutPatterns") or "").splitlines()
                         if line.strip()))


def shallow_clone(source: str, what: str, dest: Path, depth: int, label: str = "checkout self") -> None:
    """dest a clone of source holding only the last `depth` commits of what (a commit or a ref), as the agent's
    `git fetch --depth=N origin <commit>` makes it (Agent.Plugins/GitSourceProvider.cs): origin is source, HEAD
    detached at what. A local path is fetched over file:// (a plain path would ignore --depth)."""
    _reset_folder(dest)
    url = source if "://" in source else Path(source).resolve().as_uri()
    steps = [("init", "--quiet"), ("remote", "add", "origin", source),
             ("-c", "protocol.file.allow=always", "fetch", "--quiet", "--no-tags", f"--depth={depth}",
              "--upload-pack", "git -c uploadpack.allowAnySHA1InWant=true upload-pack", url, what),
             ("checkout", "--quiet", "--detach", "FETCH_HEAD")]
    for args in steps:
        done = _git(*args, cwd=dest)
        if done.returncode != 0:
            raise SourcesError(f"{label}: fetchDepth {depth}: git {args[0] if args[0] != '-c' else 'fetch'} of {what} "
                               f"from {source} failed: {done.stderr.strip()}")


def _copy_tree(source_git: Path, tree: str, dest: Path) -> None:
    """Put tree's objects (a snapshot of uncommitted changes) into dest's repository, which lacks them (shallow)."""
    listed = _git("--git-dir", str(source_git), "ls-tree", "-r", "-t", "--format=%(objecttype) %(objectname)", tree)
    names = [line.split()[1] for line in listed.stdout.splitlines() if not line.startswith("commit ")]  # no gitlinks
    objects = "\n".join([tree, *names]) + "\n"
    pack = subprocess.run(["git", "--git-dir", str(source_git), "pack-objects", "--stdout"], input=objects.encode(),
                          capture_output=True, timeout=600)
    indexed = subprocess.run(["git", "index-pack", "--stdin", "--fix-thin"], cwd=dest, input=pack.stdout,
                             capture_output=True, timeout=600)
    if listed.returncode or pack.returncode or indexed.returncode:
        raise SourcesError(f"checkout self: the snapshot tree {tree} cannot be copied into the shallow clone: "
                           f"{(listed.stderr or pack.stderr.decode() or indexed.stderr.decode()).strip()}")


def finish(dest: Path, options: Options, label: str = "checkout self") -> list[str]:
    """Submodules and LFS files of a checkout in dest, as its options ask (the agent: `git submodule sync`,
    `git submodule update --init --force [--recursive] [--depth N]`, `git lfs fetch` + checkout); what was
    done, for the log."""
    done = []
    if options.sparse_patterns or options.sparse_directories:  # the agent: git sparse-checkout set [--no-cone]
        mode, values = ("--no-cone", options.sparse_patterns) if options.sparse_patterns else \
            ("--cone", options.sparse_directories)
        sparse = _git("sparse-checkout", "set", mode, *values, cwd=dest)
        if sparse.returncode != 0:
            raise SourcesError(f"{label}: sparse checkout {' '.join(values)} failed: {sparse.stderr.strip()}")
        done.append(f"sparse checkout ({mode.removeprefix('--')}): {' '.join(values)}")
    if options.submodules:
        args = ["-c", "protocol.file.allow=always", "submodule", "update", "--init", "--force",
                *(["--recursive"] if options.submodules == "recursive" else []),
                *([f"--depth={options.depth}"] if options.depth else [])]
        synced = _git("submodule", "sync", *(["--recursive"] if options.submodules == "recursive" else []), cwd=dest)
        updated = _git(*args, cwd=dest) if synced.returncode == 0 else synced
        if updated.returncode != 0:
            raise SourcesError(f"{label}: submodules: {options.submodules}: git submodule update failed: "
                               f"{updated.stderr.strip()}")
        done.append(f"submodules ({options.submodules}) checked out")
    if options.lfs and has_git_lfs():
        pulled = _git("lfs", "pull", cwd=dest)
        if pulled.returncode != 0:
            raise SourcesError(f"{label}: lfs: true: git lfs pull failed: {pulled.stderr.strip()}")
        done.append("LFS files fetched")
    elif options.lfs and uses_lfs(dest):
        raise SourcesError(f"{label}: lfs: true: the repository tracks files with Git LFS (filter=lfs in "
                           ".gitattributes) and git-lfs is not installed here: install git-lfs, or set lfs: false")
    elif options.lfs:  # what `git lfs pull` would fetch: nothing
        done.append("lfs: no file is tracked by Git LFS, nothing to fetch")
    return done


def has_git_lfs() -> bool:
    """Is git-lfs installed (`git lfs version` works)?"""
    return _git("lfs", "version").returncode == 0


def uses_lfs(repo: Path, rev: str = "") -> bool:
    """Does the repository (its checked-out files, or rev) track a file with Git LFS (filter=lfs in a
    .gitattributes)? Without it `lfs: true` fetches nothing, on Azure as here."""
    where = [rev] if rev else []
    found = _git("grep", "-q", "-e", "filter=lfs", *where, "--", ".gitattributes", "**/.gitattributes", cwd=repo)
    return found.returncode == 0


def prepare(checkout: dict, source_dir: Path, dest: Path, options: Options = Options()) -> str:
    """Make dest a clean copy of what checkout describes (from the repository at source_dir, or the
    snapshots repository), with options (fetchDepth, submodules, lfs) applied; returns what it holds, for the
    log. SourcesError when the commit is unknown."""
    dest = Path(dest)
    if checkout.get("objects"):
        _reset_folder(dest)
        _extract(Path(checkout["objects"]), checkout["tree"], dest)
        return f"checkout self: {summary(checkout)} into {dest}"
    commit, tree = checkout.get("commit", ""), checkout.get("tree", "")
    if options.depth and commit:
        shallow_clone(str(source_dir), commit, dest, options.depth)
        if tree:
            source_git = Path(_git("rev-parse", "--absolute-git-dir", cwd=source_dir).stdout.strip())
            _copy_tree(source_git, tree, dest)
            done = _git("read-tree", "-u", "--reset", tree, cwd=dest)
            if done.returncode != 0:
                raise SourcesError(f"checkout self: the snapshot tree {tree}: {done.stderr.strip()}")
        extra = finish(dest, options)
        return f"checkout self: {summary(checkout)} into {dest} (fetchDepth {options.depth})" + \
            "".join(f"; {e}" for e in extra)
    if options != Options() or not _reuse(dest, commit, tree):
        _reset_folder(dest)
        cloned = _git("clone", "--quiet", "--no-checkout", "--", str(source_dir), str(dest))
        if cloned.returncode != 0:
            raise SourcesError(f"checkout self: git clone {source_dir} failed: {cloned.stderr.strip()}")
        target = ["--git-dir", str(dest / ".git"), "--work-tree", str(dest)]
        if commit:
            done = _git(*target, "checkout", "--quiet", "--detach", commit, cwd=dest)
            if done.returncode != 0:
                raise SourcesError(f"checkout self: commit {commit} is not in {source_dir}: "
                                   f"{done.stderr.strip()}")
        if tree or not commit:
            done = _git(*target, "read-tree", "-u", "--reset", tree or EMPTY_TREE, cwd=dest)
            if done.returncode != 0:
                raise SourcesError(f"checkout self: the snapshot tree {tree} is not in {source_dir}: "
                                   f"{done.stderr.strip()}")
    extra = finish(dest, options) if options != Options() else []
    return f"checkout self: {summary(checkout)} into {dest}" + "".join(f"; {e}" for e in extra)


def _reuse(dest: Path, commit: str, tree: str) -> bool:
    """Bring an earlier job's clone in dest back to a clean copy, when it is one at commit; False otherwise.
    Only a dest whose own .git is a repository is touched (never a repository above it)."""
    if not commit or not (dest / ".git" / "HEAD").is_file():
        return False
    target = ["--git-dir", str(dest / ".git"), "--work-tree", str(dest)]
    if _git(*target, "rev-parse", "HEAD", cwd=dest).stdout.strip() != commit:
        return False
    reset = _git(*target, "read-tree", "-u", "--reset", tree or commit, cwd=dest)
    cleaned = _git(*target, "clean", "-ffdxq", cwd=dest)
    return reset.returncode == 0 and cleaned.returncode == 0


def _reset_folder(dest: Path) -> None:
    if dest.is_symlink() or dest.is_file():
        dest.unlink()
    elif dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)


def _extract(objects: Path, tree: str, dest: Path) -> None:
    """The files of tree (in the repository objects) written into dest, without a .git."""
    archive = subprocess.Popen(["git", "--git-dir", str(objects), "archive", "--format=tar", tree],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    untar = subprocess.run(["tar", "-x", "-C", str(dest)], stdin=archive.stdout, capture_output=True)
    archive.stdout.close()
    error = archive.stderr.read().decode(errors="replace").strip()
    if archive.wait() != 0 or untar.returncode != 0:
        raise SourcesError(f"checkout self: the snapshot {tree} cannot be read from {objects}: "
                           f"{error or untar.stderr.decode(errors='replace').strip()}")


def empty(dest: Path) -> None:
    """dest exists and holds nothing (a job that checks out nothing)."""
    _reset_folder(Path(dest))


def platform_environment(state_dir: Path, tracking_uri: str, artifact_root: Path, project_root: Path,
                         workspace: Path) -> dict[str, str]:
    """What `mlops` run by a step needs, whatever folder it runs in: MLOPS_ROOT the job's copy of the project (its
    mlops.yml, data and model code: the checkout, not the user's working tree), and the engine's own workspace
    by absolute paths (MLOPS_STATE_DIR, MLOPS_TRACKING_URI, MLOPS_ARTIFACT_ROOT: the runs store, the MLflow
    store and local.yml stay in the engine's state folder, outside s/). GIT_CEILING_DIRECTORIES stops git in a
    step at the run's work folder: a step whose checkout has no .git (checkout: none, a moved .git) never finds
    the repository the state folder lies in, the user's."""
    return {"MLOPS_ROOT": str(project_root), "MLOPS_STATE_DIR": str(state_dir), "MLOPS_TRACKING_URI": tracking_uri,
            "MLOPS_ARTIFACT_ROOT": str(artifact_root), "GIT_CEILING_DIRECTORIES": str(workspace)}


def retain(store, keep: int) -> list[int]:
    """Remove the work folders ($(Pipeline.Workspace): sources, staging, downloads, temp) of completed runs but
    the newest `keep`; a queued, running or waiting run keeps its folder. Logs, records and published artifacts
    are not in it and stay. Returns the runs whose folder went."""
    root = store.directory / "work"
    if not root.is_dir():
        return []
    folders = {int(p.name): p for p in root.iterdir() if p.name.isdigit() and p.is_dir()}
    if not folders:
        return []
    runs = {run.id: run for run in store.list_runs(100000) if run.id in folders}
    completed = sorted((i for i in folders if i in runs and runs[i].status == "completed"), reverse=True)
    removed = []
    for run_id in completed[max(keep, 0):]:
        shutil.rmtree(folders[run_id], ignore_errors=True)
        removed.append(run_id)
    return removed
