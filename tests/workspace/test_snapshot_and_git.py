import subprocess
import zipfile

from ml_service.workspace.gitinfo import read_git_info
from ml_service.workspace.snapshot import snapshot_files, write_snapshot


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
