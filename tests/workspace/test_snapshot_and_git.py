"""snapshot.zip of the source tree (workspace/snapshot.py) and git facts (workspace/gitinfo.py): in a git work tree git
decides what is ignored and .mlopsignore adds rules; outside one .mlopsignore wins over .gitignore; a .env never goes
in. Real git repositories in temp dirs."""
import subprocess
import zipfile

import pytest

from ml_service.workspace.gitinfo import read_git_info
from ml_service.workspace.snapshot import snapshot_files, write_snapshot

pytestmark = pytest.mark.integration  # git runs for real


def make_tree(root):
    (root / "src").mkdir()
    (root / "src" / "a.py").write_text("a")
    (root / "big").mkdir()
    (root / "big" / "data.bin").write_text("x")
    (root / "notes.log").write_text("log")


def test_gitignore_is_honoured_and_git_dir_never_included(tmp_path):
    make_tree(tmp_path)
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref")
    (tmp_path / ".gitignore").write_text("big/\n*.log\n")
    assert snapshot_files(tmp_path) == [".gitignore", "src/a.py"]


def test_mlopsignore_wins_over_gitignore(tmp_path):
    make_tree(tmp_path)
    (tmp_path / ".gitignore").write_text("big/\n")
    (tmp_path / ".mlopsignore").write_text("src/\n")
    files = snapshot_files(tmp_path)
    assert "big/data.bin" in files and "src/a.py" not in files


def test_snapshot_zip_holds_the_files(tmp_path):
    (tmp_path / "tree").mkdir()
    make_tree(tmp_path / "tree")
    count = write_snapshot(tmp_path / "tree", tmp_path / "out" / "snapshot.zip")
    with zipfile.ZipFile(tmp_path / "out" / "snapshot.zip") as archive:
        assert sorted(archive.namelist()) == ["big/data.bin", "notes.log", "src/a.py"]
    assert count == 3


def test_git_info_reads_commit_branch_and_dirty_flag(tmp_path):
    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q", "-b", "trunk")
    (tmp_path / "f.txt").write_text("1")
    git("add", "f.txt")
    git("-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "c")
    info = read_git_info(tmp_path)
    assert len(info.commit) == 40 and info.branch == "trunk" and info.dirty is False
    (tmp_path / "f.txt").write_text("2")
    assert read_git_info(tmp_path).dirty is True
    assert info.tags()["mlflow.source.git.commit"] == info.commit


def test_no_git_gives_no_tags(tmp_path):
    assert read_git_info(tmp_path).tags() == {}


def test_a_file_removed_while_the_snapshot_is_written_is_left_out(tmp_path, monkeypatch):
    import zipfile

    from ml_service.workspace import snapshot

    (tmp_path / "kept.py").write_text("x = 1\n")
    (tmp_path / "scratch.tmp").write_text("gone soon\n")
    listed = snapshot.snapshot_files(tmp_path)
    monkeypatch.setattr(snapshot, "snapshot_files", lambda root, extra=None: listed)
    (tmp_path / "scratch.tmp").unlink()  # another process removes it between the walk and the zip
    dest = tmp_path / "out" / "snapshot.zip"
    assert snapshot.write_snapshot(tmp_path, dest) == 1
    assert zipfile.ZipFile(dest).namelist() == ["kept.py"]


def test_the_projects_ignore_rules_keep_a_dot_env_out_of_every_snapshot(tmp_path):
    import shutil

    from ml_service.workspace.snapshot import snapshot_files
    from tests.conftest import ROOT

    shutil.copy(ROOT / ".gitignore", tmp_path / ".gitignore")
    (tmp_path / ".env").write_text("MLOPS_SCORING_KEYS=a-secret-that-must-stay-here\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    assert snapshot_files(tmp_path) == [".gitignore", "code.py"]


def git(root, *args):
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


def committed_repo(root, branch="trunk"):
    """A git work tree with one commit of f.txt on branch."""
    git(root, "init", "-q", "-b", branch)
    (root / "f.txt").write_text("1")
    git(root, "add", "f.txt")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "c")


def test_in_a_git_work_tree_git_decides_and_mlopsignore_adds_rules(tmp_path):
    committed_repo(tmp_path)
    make_tree(tmp_path)
    (tmp_path / ".gitignore").write_text("*.log\n")
    (tmp_path / ".mlopsignore").write_text("big/\n")
    assert snapshot_files(tmp_path) == [".gitignore", ".mlopsignore", "f.txt", "src/a.py"]
    (tmp_path / ".git" / "info" / "exclude").write_text("src/\n")  # what git ignores beyond .gitignore counts
    assert snapshot_files(tmp_path) == [".gitignore", ".mlopsignore", "f.txt"]
    assert snapshot_files(tmp_path, extra_ignores=["f.txt"]) == [".gitignore", ".mlopsignore"]


def test_a_dot_env_stays_out_whatever_the_rules_say(tmp_path):
    for name in (".env", ".env.local", "sub/.env"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("SECRET=1\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    assert snapshot_files(tmp_path) == ["code.py"]  # no ignore file at all
    (tmp_path / ".mlopsignore").write_text("!.env\n!.env.*\n!sub/.env\n")  # not even brought back by a ! rule
    assert snapshot_files(tmp_path) == [".mlopsignore", "code.py"]
    committed_repo(tmp_path)
    assert snapshot_files(tmp_path) == [".mlopsignore", "code.py", "f.txt"]


def test_an_untracked_file_does_not_make_the_tree_dirty_but_a_staged_change_does(tmp_path):
    committed_repo(tmp_path)
    (tmp_path / "new.txt").write_text("untracked")
    assert read_git_info(tmp_path).dirty is False
    git(tmp_path, "add", "new.txt")
    assert read_git_info(tmp_path).dirty is True


def test_branch_commit_remote_and_user_come_from_the_checkout(tmp_path):
    from ml_service.workspace.gitinfo import branch_and_commit, git_output, user_email

    committed_repo(tmp_path, branch="feature/x")
    git(tmp_path, "remote", "add", "origin", "https://git.example/team/repo.git")
    git(tmp_path, "config", "user.email", "dev@example.com")
    commit = git_output(tmp_path, "rev-parse", "HEAD")
    assert len(commit) == 40 and branch_and_commit(tmp_path) == ("feature/x", commit)
    assert user_email(tmp_path) == "dev@example.com"
    info = read_git_info(tmp_path)
    assert info.tags() == {"mlflow.source.git.commit": commit, "mlflow.source.git.branch": "feature/x",
                           "mlops.git.dirty": "false", "mlflow.source.git.repoURL": "https://git.example/team/repo.git"}
    assert branch_and_commit(tmp_path / "f.txt") == ("", "") and git_output(tmp_path, "no-such-command") == ""
