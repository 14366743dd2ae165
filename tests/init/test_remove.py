"""Project names `mlops init` accepts and refuses, and `mlops init --remove`: init then remove leaves the
repository as it was (git status clean), asks first, and refuses while the model is live."""
from __future__ import annotations

import subprocess

import pytest

from ml_service.cli import main
from ml_service.init import InitError
from ml_service.init.names import project_names
from tests.init.test_init import env_for, in_repo, init, make_repo, mlops, snapshot, write_csv

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("name", ["names", "ames", "age", "model", "Ames_Housing", "air", "events", "_private",
                                  "match"])
def test_any_python_identifier_that_shadows_nothing_is_a_name(name):
    assert project_names(name).model_name == f"{name}_model"


@pytest.mark.parametrize("name, why", [
    ("ml_service", "package of the platform"), ("tests", "package of the platform"),
    ("data", "package of the platform"), ("json", "standard library"), ("os", "standard library"),
    ("class", "keyword"), ("2fast", "not a valid"), ("na-me", "not a valid"), ("café", "not a valid"),
    ("__init__", "special name"),
])
def test_names_that_shadow_or_are_not_identifiers_are_refused(name, why):
    with pytest.raises(InitError, match=why):
        project_names(name)


def test_an_installed_module_name_is_refused_with_its_location(tmp_path, monkeypatch, capsys):
    repo = make_repo(tmp_path / "repo")
    in_repo(monkeypatch, repo)
    csv = write_csv(tmp_path / "c.csv", "regression")
    before = snapshot(repo)
    assert main(["init", "pandas", "--data", str(csv), "--target", "monthly spend"]) == 1
    err = capsys.readouterr().err
    assert "would shadow the installed module" in err and "pandas" in err
    assert snapshot(repo) == before


def tree(repo) -> dict[str, str]:
    """snapshot() of repo without git's own folder (git status refreshes its index)."""
    return {k: v for k, v in snapshot(repo).items() if k != ".git" and not k.startswith(".git/")}


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@localhost", *args],
                          capture_output=True, text=True, check=True).stdout


@pytest.fixture()
def committed_repo(tmp_path):
    """A git repository with one example project already in it (init'ed and committed)."""
    repo = make_repo(tmp_path / "repo")
    (repo / ".pipelines" / "keep.yml").write_text("trigger: none\n")
    (repo / ".gitignore").write_text(".mlops/\n__pycache__/\n")
    assert init(repo, "other", write_csv(tmp_path / "other.csv", "regression"), "monthly spend").returncode == 0
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "before")
    return repo


def test_init_then_remove_leaves_the_repository_as_it_was(committed_repo, tmp_path):
    repo = committed_repo
    before = tree(repo)
    made = init(repo, "names", write_csv(tmp_path / "c.csv", "classification"), "churned")
    assert made.returncode == 0, made.stderr
    assert (repo / "names" / "training" / "train.py").is_file() and git(repo, "status", "--porcelain")
    removed = mlops(repo, "init", "names", "--remove", "--yes")
    assert removed.returncode == 0, removed.stderr
    assert tree(repo) == before
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    assert (repo / "other" / "training" / "train.py").is_file()


def test_remove_asks_first_and_no_keeps_everything(committed_repo, tmp_path):
    repo = committed_repo
    assert init(repo, "kept", write_csv(tmp_path / "c.csv", "regression"), "monthly spend").returncode == 0
    before = tree(repo)
    answered = subprocess.run([*mlops_command(), "init", "kept", "--remove"], cwd=repo, env=env_for(repo),
                              input="n\n", capture_output=True, text=True, timeout=300)
    assert answered.returncode == 1
    assert tree(repo) == before
    answered = subprocess.run([*mlops_command(), "init", "kept", "--remove"], cwd=repo, env=env_for(repo),
                              input="y\n", capture_output=True, text=True, timeout=300)
    assert answered.returncode == 0, answered.stderr
    assert not (repo / "kept").exists() and not (repo / ".pipelines" / "kept-build.yml").exists()


def mlops_command() -> list[str]:
    import sys

    return [sys.executable, "-m", "ml_service.cli"]


def test_remove_is_refused_while_a_version_is_live_in_production(committed_repo, tmp_path):
    from ml_service.config import load_settings
    from ml_service.deploy import records

    repo = committed_repo
    assert init(repo, "served", write_csv(tmp_path / "c.csv", "regression"), "monthly spend").returncode == 0
    settings = load_settings(env_for(repo, MLOPS_MODEL="served"))
    records.record(settings, "production", "served_model", "3", "mlops/served_model:3", "", records.LIVE, "gitops")
    before = tree(repo)
    refused = mlops(repo, "init", "served", "--remove", "--yes")
    assert refused.returncode == 1 and "version 3 in production" in refused.stderr
    assert tree(repo) == before


def test_removing_a_project_that_is_not_there_changes_nothing(committed_repo):
    before = tree(committed_repo)
    result = mlops(committed_repo, "init", "absent", "--remove", "--yes")
    assert result.returncode == 1 and "no model project 'absent'" in result.stderr
    assert tree(committed_repo) == before


def test_init_without_data_or_target_is_a_usage_error_and_changes_nothing(tmp_path, monkeypatch, capsys):
    from ml_service.errors import EXIT_USAGE

    repo = make_repo(tmp_path / "repo")
    in_repo(monkeypatch, repo)
    before = snapshot(repo)
    assert main(["init", "fresh", "--target", "y"]) == EXIT_USAGE
    assert "--data" in capsys.readouterr().err and snapshot(repo) == before


@pytest.fixture()
def initialised(tmp_path):
    """A repository with project `first`, created in-process (no git)."""
    from ml_service.init.project import init_project

    repo = make_repo(tmp_path / "repo")
    init_project(repo, write_csv(tmp_path / "c.csv", "regression"), "monthly spend", project="first")
    return repo


@pytest.mark.parametrize("answer, removed", [("", False), ("n", False), ("no", False), ("maybe", False), (None, False),
                                             ("y", True), ("YES", True), (" yes ", True)])
def test_remove_goes_ahead_only_on_a_yes(initialised, answer, removed):
    """The question defaults to no (remove.py): an empty answer, no, anything else or the end of input keep the
    project; y or yes in any case remove it."""
    from ml_service.config import load_settings
    from ml_service.init.remove import confirm_and_remove

    def ask(prompt):
        if answer is None:
            raise EOFError
        return answer
    before = tree(initialised)
    settings = load_settings(env_for(initialised))
    assert confirm_and_remove(initialised, "first", settings, ask=ask, say=lambda text: None) is removed
    assert (tree(initialised) == before) is not removed
    assert (initialised / "first").exists() is not removed
    assert (initialised / "data" / "first.csv").exists() is not removed


def test_removing_a_project_keeps_the_data_and_contract_another_project_uses(initialised):
    """A data file or contract named by another project's entry stays (remove.py _shared); its own files go, and
    folders left empty go too, but never .pipelines/ (the platform's own)."""
    import yaml

    from ml_service.init.config_entry import add_model
    from ml_service.init.remove import plan_removal, remove_project

    config = initialised / "mlops.yml"
    config.write_text(add_model(config.read_text(), {"project": "second", "name": "second_model",
                                                     "data": "data/first.csv",
                                                     "contract": "data/contract/first_suite.json"}))
    (initialised / "second").mkdir()
    remove_project(plan_removal(initialised, "second"))
    assert (initialised / "data" / "first.csv").is_file()
    assert (initialised / "data" / "contract" / "first_suite.json").is_file()
    assert not (initialised / "second").exists()
    assert [m["project"] for m in yaml.safe_load(config.read_text())["models"]] == ["first"]
    remove_project(plan_removal(initialised, "first"))  # the last user of the data: now it goes
    assert not (initialised / "data").exists() and not (initialised / "first").exists()
    assert (initialised / ".pipelines").is_dir() and not any((initialised / ".pipelines").iterdir())  # the platform's


@pytest.mark.parametrize("data", ["../outside.csv", "ABSOLUTE"])
def test_remove_refuses_an_entry_whose_files_lie_outside_the_repository(initialised, data):
    """An entry whose data names a file outside the repository (hand-edited mlops.yml) is refused before anything
    is deleted (remove.py): the outside file, the project and its entry stay."""
    from ml_service.init.remove import plan_removal

    outside = initialised.parent / "outside.csv"
    outside.write_text("a,b\n1,2\n")
    config = initialised / "mlops.yml"
    config.write_text(config.read_text().replace("data: data/first.csv",
                                                 f"data: {outside if data == 'ABSOLUTE' else data}"))
    before = tree(initialised)
    with pytest.raises(InitError, match="is not inside"):
        plan_removal(initialised, "first")
    assert outside.read_text() == "a,b\n1,2\n" and tree(initialised) == before


def test_a_module_file_of_the_projects_name_at_the_root_is_refused(tmp_path, monkeypatch, capsys):
    """names.py check_free: NAME.py at the repository's root is the module `import NAME` finds; init NAME is refused
    and writes nothing."""
    repo = make_repo(tmp_path / "repo")
    (repo / "helpers.py").write_text('"""A module of the repository."""\n')
    in_repo(monkeypatch, repo)
    before = snapshot(repo)
    assert main(["init", "helpers", "--data", str(write_csv(tmp_path / "c.csv", "regression")),
                 "--target", "monthly spend"]) == 1
    assert "helpers" in capsys.readouterr().err and snapshot(repo) == before
