"""The GitOps target in-process with real git repositories in a temp dir, so that the mutation tester sees it:
where the target is (mlops.yml or the defaults, {model} per model), reading what a branch or HEAD holds,
commits to a branch with git plumbing (work tree and HEAD untouched, files written and removed in one commit,
unchanged state no commit, a compare-and-swap that never loses a concurrent commit), and commits in a work tree
(only the desired-state files, whatever else is staged stays staged)."""
from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest

from ml_service.deploy import gitops
from ml_service.deploy.qa import DeployError
from ml_service.sections import Environment, environments_from

MODEL = "gitops_model"


def git(repo, *args) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True,
                          input="").stdout.strip()


def bare(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(path)], check=True)
    return path


def work_tree(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    (path / "README").write_text("the owner's file\n")
    git(path, "add", "README")
    git(path, "-c", "user.name=owner", "-c", "user.email=owner@example.com", "commit", "-q", "-m", "start")
    return path


def with_gitops(settings, **config):
    return dataclasses.replace(settings, environments=environments_from({"production": {"gitops": config}}))


def with_production(settings, config):
    return dataclasses.replace(settings, environments=environments_from({"production": config}))


def files_at(repo, rev) -> dict[str, str]:
    names = git(repo, "ls-tree", "-r", "--name-only", rev).split()
    return {name: git(repo, "show", f"{rev}:{name}") for name in names}


def test_the_target_comes_from_mlops_yml_or_the_defaults(workspace, tmp_path):
    settings = dataclasses.replace(workspace, root=tmp_path / "root", environments=environments_from({}))
    defaults = Environment("production")
    assert gitops.production_config(settings) == defaults
    assert gitops.production_config(with_production(settings, None)) == defaults
    assert gitops.gitops_target(settings, MODEL) == (settings.state_dir / "gitops",
                                                     f"production/{MODEL}/values-prod.yaml", "")
    assert gitops.gitops_target(with_gitops(settings, repo=None, branch=None), MODEL)[0] == \
        settings.state_dir / "gitops"
    relative = with_gitops(settings, repo="state/repo", values_file="prod/{model}-{model}.yaml", branch="live")
    assert gitops.gitops_target(relative, MODEL) == (tmp_path / "root" / "state" / "repo",
                                                     f"prod/{MODEL}-{MODEL}.yaml", "live")
    absolute = with_gitops(settings, repo=str(tmp_path / "abs"))
    assert gitops.gitops_target(absolute, MODEL)[0] == tmp_path / "abs"
    assert gitops.production_config(absolute).gitops.repo == str(tmp_path / "abs")
    assert gitops.for_model("a/{model}/b", "m") == "a/m/b"


def test_git_runs_in_the_repository_as_mlops_with_the_identity_as_e_mail(tmp_path, monkeypatch):
    repo = bare(tmp_path / "r.git")
    blob = gitops.git(repo, "hash-object", "-w", "--stdin", stdin="hello\n")
    assert blob.returncode == 0 and git(repo, "cat-file", "-p", blob.stdout.strip()) == "hello"
    tree = git(repo, "mktree", "--missing")  # the empty tree
    made = gitops.git(repo, "commit-tree", tree, "-m", "x", identity="who@example.com").stdout.strip()
    assert git(repo, "log", "-1", "--format=%an <%ae>|%cn <%ce>", made) == \
        "mlops <who@example.com>|mlops <who@example.com>"
    anonymous = gitops.git(repo, "commit-tree", tree, "-m", "y").stdout.strip()
    assert git(repo, "log", "-1", "--format=%an <%ae>", anonymous) == "mlops <mlops@localhost>"
    monkeypatch.setenv("GIT_AUTHOR_NAME", "ignored")
    env = gitops.git(repo, "var", "GIT_AUTHOR_IDENT", env={"GIT_AUTHOR_EMAIL": "env@example.com"})
    assert env.stdout.startswith("ignored <env@example.com>")  # the environment is added to, not replaced
    assert gitops.git(repo, "rev-parse", "--verify", "nothing").returncode != 0


def test_a_repository_is_a_work_tree_or_a_bare_one_not_a_folder_inside_one(tmp_path):
    tree = work_tree(tmp_path / "tree")
    assert gitops.is_repository(tree)
    assert gitops.is_repository(bare(tmp_path / "r.git"))
    (tree / "sub").mkdir()
    assert not gitops.is_repository(tree / "sub")
    assert not gitops.is_repository(tmp_path / "missing")
    fake = tmp_path / "fake"
    (fake / "HEAD").mkdir(parents=True)
    (fake / "objects").mkdir()
    assert not gitops.is_repository(fake)  # HEAD must be a file
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "HEAD").write_text("ref: refs/heads/main\n")
    assert not gitops.is_repository(tmp_path / "half")  # and objects a folder


def test_commits_to_a_branch_leave_the_work_tree_and_head_alone(workspace, tmp_path):
    repo = work_tree(tmp_path / "tree")
    head = git(repo, "rev-parse", "HEAD")
    settings = with_gitops(workspace, repo=str(repo), branch="production-state")
    files = {"p/values.yaml": "v: 1\n", "p/extra.yaml": "e\n", "p/never.yaml": None}
    first, state = gitops.commit_files(settings, MODEL, files, "deploy 1\n\nbody line", "a@example.com")
    assert state == "committed" and git(repo, "rev-parse", "refs/heads/production-state") == first
    assert files_at(repo, first) == {"p/values.yaml": "v: 1", "p/extra.yaml": "e"}  # a root commit of its own
    assert git(repo, "rev-list", "--count", first) == "1"
    assert git(repo, "log", "-1", "--format=%s|%ae|%b", first) == "deploy 1|a@example.com|body line"
    assert git(repo, "reflog", "-1", "--format=%gs", "refs/heads/production-state") == "deploy 1"
    assert git(repo, "rev-parse", "HEAD") == head and git(repo, "symbolic-ref", "HEAD") == "refs/heads/main"
    assert not (repo / "p").exists() and git(repo, "status", "--porcelain") == ""

    second, state = gitops.commit_files(settings, MODEL, {"p/values.yaml": "v: 2\n", "p/extra.yaml": None},
                                        "deploy 2", "b@example.com")
    assert state == "committed" and git(repo, "rev-parse", f"{second}^") == first
    assert files_at(repo, second) == {"p/values.yaml": "v: 2"}
    assert gitops.read(settings, MODEL, "p/values.yaml") == ("v: 2\n", second)
    assert gitops.read(settings, MODEL, "p/extra.yaml") == (None, second)
    assert gitops.commit_info(settings, MODEL, second)["subject"] == "deploy 2"

    again, state = gitops.commit_files(settings, MODEL, {"p/values.yaml": "v: 2\n", "p/extra.yaml": None},
                                       "deploy 2 again", "b@example.com")
    assert (again, state) == (second, "unchanged")
    assert git(repo, "rev-parse", "refs/heads/production-state") == second


def test_a_bare_repository_takes_branch_commits_even_when_its_head_names_that_branch(workspace, tmp_path):
    repo = bare(tmp_path / "r.git")
    settings = with_gitops(workspace, repo=str(repo), branch="main", values_file="x/{model}.yaml")
    assert gitops.read(settings, MODEL, f"x/{MODEL}.yaml") == (None, "")  # no commit yet
    commit, state = gitops.commit_files(settings, MODEL, {f"x/{MODEL}.yaml": "a\n"}, "first", "a@b")
    assert state == "committed"
    assert gitops.read(settings, MODEL, f"x/{MODEL}.yaml") == ("a\n", commit)


def test_invalid_or_checked_out_branches_are_refused(workspace, tmp_path):
    repo = work_tree(tmp_path / "tree")
    head = git(repo, "rev-parse", "HEAD")
    with pytest.raises(DeployError, match="'bad..name' is not a valid branch name"):
        gitops.commit_files(with_gitops(workspace, repo=str(repo), branch="bad..name"), MODEL, {"a": "1"}, "m", "w")
    with pytest.raises(DeployError, match="'main' is checked out in"):
        gitops.commit_files(with_gitops(workspace, repo=str(repo), branch="main"), MODEL, {"a": "1"}, "m", "w")
    assert git(repo, "rev-parse", "HEAD") == head and not (repo / "a").exists()


def racing(monkeypatch, repo, branch, commit):
    """git as gitops runs it, but a concurrent deploy moves the branch just before this one creates its commit."""
    real = gitops.git
    raced = []

    def git_with_a_race(where, *args, **kwargs):
        if args[:1] == ("commit-tree",) and not raced:
            raced.append(True)
            git(repo, "update-ref", f"refs/heads/{branch}", commit)
        return real(where, *args, **kwargs)

    monkeypatch.setattr(gitops, "git", git_with_a_race)
    return raced


def test_a_branch_commit_never_overwrites_a_concurrent_one(workspace, tmp_path, monkeypatch):
    repo = bare(tmp_path / "r.git")
    settings = with_gitops(workspace, repo=str(repo), branch="state")
    first, _ = gitops.commit_files(settings, MODEL, {"v.yaml": "1\n"}, "one", "a@b")
    tree = git(repo, "rev-parse", f"{first}^{{tree}}")
    concurrent = git(repo, "-c", "user.name=o", "-c", "user.email=o@b", "commit-tree", tree, "-p", first, "-m", "other")
    raced = racing(monkeypatch, repo, "state", concurrent)
    with pytest.raises(DeployError, match=f"committing to branch 'state' of {repo} failed: .+"):
        gitops.commit_files(settings, MODEL, {"v.yaml": "2\n"}, "two", "a@b")
    assert raced and git(repo, "rev-parse", "state") == concurrent
    second, state = gitops.commit_files(settings, MODEL, {"v.yaml": "2\n"}, "two", "a@b")  # the race is over
    assert state == "committed" and git(repo, "rev-parse", f"{second}^") == concurrent


def test_a_first_branch_commit_never_overwrites_a_branch_created_meanwhile(workspace, tmp_path, monkeypatch):
    repo = bare(tmp_path / "r.git")
    other = git(repo, "-c", "user.name=o", "-c", "user.email=o@b", "commit-tree", git(repo, "mktree", "--missing"),
                "-m", "other")
    racing(monkeypatch, repo, "state", other)
    with pytest.raises(DeployError, match="committing to branch 'state'"):
        gitops.commit_files(with_gitops(workspace, repo=str(repo), branch="state"), MODEL, {"v.yaml": "1\n"}, "m", "w")
    assert git(repo, "rev-parse", "state") == other


def test_a_failing_commit_tree_is_reported_not_swallowed(workspace, tmp_path, monkeypatch):
    repo = bare(tmp_path / "r.git")
    real = gitops.git

    def broken(where, *args, **kwargs):
        if args[:1] == ("commit-tree",):
            args = ("commit-tree", "0" * 40, *args[2:])
        return real(where, *args, **kwargs)

    monkeypatch.setattr(gitops, "git", broken)
    with pytest.raises(DeployError, match="committing to branch 'state' .* failed: .*is not a valid"):
        gitops.commit_files(with_gitops(workspace, repo=str(repo), branch="state"), MODEL, {"v.yaml": "1\n"}, "m", "w")
    assert gitops.git(repo, "rev-parse", "-q", "--verify", "refs/heads/state").stdout == ""


def test_a_missing_target_is_created_and_committed_in_its_work_tree(workspace, tmp_path):
    repo = tmp_path / "new" / "gitops"
    settings = with_gitops(workspace, repo=str(repo))
    assert gitops.read(settings, MODEL, "v.yaml") == (None, "")  # not a repository yet
    commit, state = gitops.commit_files(settings, MODEL, {"prod/v.yaml": "1\n", "prod/gone.yaml": None}, "first",
                                        "a@example.com")
    assert state == "committed" and gitops.is_repository(repo)
    assert git(repo, "symbolic-ref", "HEAD") == "refs/heads/main"
    assert files_at(repo, "HEAD") == {"prod/v.yaml": "1"} and (repo / "prod" / "v.yaml").read_text() == "1\n"
    assert git(repo, "log", "-1", "--format=%s|%an|%ae") == "first|mlops|a@example.com"
    assert gitops.read(settings, MODEL, "prod/v.yaml") == ("1\n", commit)
    info = gitops.commit_info(settings, MODEL, commit)
    assert info["commit"] == commit and info["subject"] == "first" and info["time"][:2] == "20"
    assert gitops.commit_info(settings, MODEL, "0" * 40) == {"commit": "0" * 40, "time": "", "subject": ""}


def test_work_tree_commits_take_only_the_desired_state_files(workspace, tmp_path):
    repo = work_tree(tmp_path / "tree")
    settings = with_gitops(workspace, repo=str(repo))
    (repo / "README").write_text("staged by the owner\n")
    git(repo, "add", "README")
    (repo / "notes").write_text("untracked\n")
    first, state = gitops.commit_files(settings, MODEL, {"p/a.yaml": "a\n", "p/b.yaml": "b\n"}, "one", "w@x")
    assert state == "committed" and git(repo, "rev-parse", "HEAD") == first
    assert files_at(repo, first) == {"README": "the owner's file", "p/a.yaml": "a", "p/b.yaml": "b"}
    assert git(repo, "status", "--porcelain") == "M  README\n?? notes"  # still staged, still untracked

    second, state = gitops.commit_files(settings, MODEL, {"p/a.yaml": "a2\n", "p/b.yaml": None, "p/c.yaml": None},
                                        "two", "w@x")
    assert state == "committed" and git(repo, "rev-parse", f"{second}^") == first
    assert files_at(repo, second) == {"README": "the owner's file", "p/a.yaml": "a2"}
    assert not (repo / "p" / "b.yaml").exists() and (repo / "p" / "a.yaml").read_text() == "a2\n"

    same, state = gitops.commit_files(settings, MODEL, {"p/a.yaml": "a2\n", "p/b.yaml": None}, "three", "w@x")
    assert (same, state) == (second, "unchanged")
    assert git(repo, "status", "--porcelain") == "M  README\n?? notes"


def test_a_bare_repository_needs_a_branch_and_a_refused_commit_is_an_error(workspace, tmp_path):
    repo = bare(tmp_path / "r.git")
    with pytest.raises(DeployError, match="is a bare repository: set environments.production.gitops.branch"):
        gitops.commit_files(with_gitops(workspace, repo=str(repo)), MODEL, {"v.yaml": "1\n"}, "m", "w")
    tree = work_tree(tmp_path / "tree")
    hook = tree / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho refused by policy >&2\nexit 1\n")
    hook.chmod(0o755)
    with pytest.raises(DeployError, match=f"git commit in {tree} failed: refused by policy"):
        gitops.commit_files(with_gitops(workspace, repo=str(tree)), MODEL, {"v.yaml": "1\n"}, "m", "w")


def test_a_branch_commit_keeps_the_files_it_does_not_name_and_the_owners_index(workspace, tmp_path):
    repo = work_tree(tmp_path / "tree")
    (repo / "README").write_text("staged by the owner\n")
    git(repo, "add", "README")
    settings = with_gitops(workspace, repo=str(repo), branch="state")
    gitops.commit_files(settings, MODEL, {"p/a.yaml": "a\n", "p/b.yaml": "b\n"}, "one", "w")
    second, _ = gitops.commit_files(settings, MODEL, {"p/old.yaml": None, "p/a.yaml": None, "p/c.yaml": "c\n"},
                                    "two", "w")
    assert files_at(repo, second) == {"p/b.yaml": "b", "p/c.yaml": "c"}  # b kept, a removed, c added after a removal
    assert git(repo, "status", "--porcelain") == "M  README"  # the owner's index is not ours to use
    assert git(repo, "diff", "--cached", "--name-only") == "README"


def test_a_removal_alone_is_a_commit_in_a_work_tree_too(workspace, tmp_path):
    repo = work_tree(tmp_path / "tree")
    settings = with_gitops(workspace, repo=str(repo))
    first, _ = gitops.commit_files(settings, MODEL, {"a/b/c.yaml": "c\n", "a/b/d.yaml": "d\n", "a/e.yaml": "e\n"},
                                   "deep", "w")
    assert (repo / "a" / "b" / "c.yaml").read_text() == "c\n"
    second, state = gitops.commit_files(settings, MODEL, {"a/b/c.yaml": None}, "remove c", "w")
    assert state == "committed" and git(repo, "rev-parse", f"{second}^") == first
    assert files_at(repo, second) == {"README": "the owner's file", "a/b/d.yaml": "d", "a/e.yaml": "e"}
    assert not (repo / "a" / "b" / "c.yaml").exists()
    (repo / "a" / "e.yaml").unlink()  # someone deleted the file but not from git: the removal still commits
    third, state = gitops.commit_files(settings, MODEL, {"a/e.yaml": None}, "remove e", "w")
    assert state == "committed" and files_at(repo, third) == {"README": "the owner's file", "a/b/d.yaml": "d"}
    assert git(repo, "status", "--porcelain") == ""


def test_an_empty_folder_becomes_the_target_and_a_failing_git_init_is_an_error(workspace, tmp_path, monkeypatch):
    folder = tmp_path / "empty"
    folder.mkdir()
    commit, state = gitops.commit_files(with_gitops(workspace, repo=str(folder)), MODEL, {"v": "1\n"}, "m", "w")
    assert state == "committed" and git(folder, "rev-parse", "HEAD") == commit
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "missing" / "gitdir"))  # git init cannot work here
    monkeypatch.setenv("GIT_WORK_TREE", "/proc/no-such-tree")
    target = tmp_path / "new"
    with pytest.raises(DeployError) as raised:
        gitops.commit_files(with_gitops(workspace, repo=str(target)), MODEL, {"v": "1\n"}, "m", "w")
    assert str(raised.value) == f"cannot create the GitOps repository {target}"


def test_the_refusals_say_what_to_do(workspace, tmp_path):
    repo = work_tree(tmp_path / "tree")
    with pytest.raises(DeployError) as raised:
        gitops.commit_files(with_gitops(workspace, repo=str(repo), branch="main"), MODEL, {"a": "1"}, "m", "w")
    assert str(raised.value) == (
        f"the GitOps branch 'main' is checked out in {repo}; committing to it behind the work tree's back would be "
        "confusing: check out another branch or leave gitops.branch empty")


def test_commit_info_is_the_iso_author_time_and_the_subject_even_when_empty(workspace, tmp_path):
    import re

    repo = bare(tmp_path / "r.git")
    settings = with_gitops(workspace, repo=str(repo), branch="state")
    first, _ = gitops.commit_files(settings, MODEL, {"v": "1\n"}, "subject line\n\nbody", "w")
    info = gitops.commit_info(settings, MODEL, first)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d([+-]\d\d:\d\d|Z)", info["time"]), info
    assert info == {"commit": first, "time": git(repo, "log", "-1", "--format=%aI", first), "subject": "subject line"}
    empty = git(repo, "-c", "user.name=o", "-c", "user.email=o@b", "commit-tree", f"{first}^{{tree}}", "-m", "")
    assert gitops.commit_info(settings, MODEL, empty)["subject"] == ""
    assert gitops.commit_info(settings, MODEL, empty)["time"] == git(repo, "log", "-1", "--format=%aI", empty)


def test_each_models_state_is_credited_to_its_own_last_commit_not_the_targets_latest(workspace, tmp_path):
    from ml_service.deploy.state import read_state

    settings = with_gitops(workspace, repo=str(bare(tmp_path / "shared.git")), branch="main")
    values = "model:\n  version: {v}\nimage:\n  repository: mlops/x\n  tag: '{v}'\n"
    own, _ = gitops.commit_files(settings, "titanic_model",
                                 {"production/titanic_model/values-prod.yaml": values.format(v=3)},
                                 "production: titanic_model version 3", "")
    other, _ = gitops.commit_files(settings, "ames_model",
                                   {"production/ames_model/values-prod.yaml": values.format(v=1)},
                                   "production: ames_model version 1", "")
    assert own != other
    titanic, ames = read_state(settings, "titanic_model", False), read_state(settings, "ames_model", False)
    assert (titanic.source["commit"], titanic.source["subject"]) == (own, "production: titanic_model version 3")
    assert (ames.source["commit"], ames.source["subject"]) == (other, "production: ames_model version 1")
