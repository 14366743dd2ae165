"""`mlops init` end to end, in a temporary minimal repository: the project it writes passes its own tests,
trains, registers version 1 and then "not promoted"; bad input changes nothing; QA serves records."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ml_service.cli import main
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

CONFIG = """\
# A minimal repository: these comments must survive `mlops init`.
workspace:
  state_dir: .mlops       # the embedded default

# Model projects (docs/model-projects.md); init appends to this list.
models: []

# The local CI engine: this comment introduces the next section.
ci:
  variable_groups: {}
"""
TARGETS = {"classification": "churned", "regression": "monthly spend"}


def write_csv(path: Path, task: str, rows: int = 300, seed: int = 3) -> Path:
    """Customers: whole numbers, numbers with gaps, text with gaps, booleans; names with spaces and dashes."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "age": rng.integers(18, 80, rows),
        "monthly income": rng.normal(5000, 1500, rows).round(2),
        "plan-type": rng.choice(["basic", "plus", "premium"], rows),
        "region": rng.choice(["north", "south", "east"], rows),
        "is active": rng.choice([True, False], rows),
    })
    signal = (0.04 * (frame["age"] - 50) + (frame["monthly income"] - 5000) / 1500
              + frame["plan-type"].map({"basic": -0.8, "plus": 0.2, "premium": 1.0}) + rng.normal(0, 0.6, rows))
    frame.loc[rng.choice(rows, rows // 12, replace=False), "monthly income"] = np.nan
    frame.loc[rng.choice(rows, rows // 15, replace=False), "region"] = None
    if task == "classification":
        frame[TARGETS[task]] = np.where(signal > 0.1, "yes", "no")
    else:
        frame[TARGETS[task]] = (120 + 30 * signal).round(2)
    frame.to_csv(path, index=False)
    return path


def make_repo(path: Path, platform: bool = False) -> Path:
    """A repository with an mlops.yml (workspace: and comments) and .pipelines/; platform: with the code
    a scoring image is built from (ml_service/, environment_setup/)."""
    (path / ".pipelines").mkdir(parents=True)
    (path / "mlops.yml").write_text(CONFIG)
    if platform:
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        for folder in ("ml_service", "environment_setup"):
            shutil.copytree(ROOT / folder, path / folder, ignore=ignore)
    return path


def env_for(repo: Path, **extra: str) -> dict[str, str]:
    """The environment of a command in repo: no inherited MLOPS_* selection, the repo's own workspace, and the
    platform of the working tree under test first on the path (cwd is the repo, not the tree, so `python -m`
    would otherwise import whatever copy of ml_service the interpreter has installed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    env.update(MLOPS_ROOT=str(repo), MLOPS_STATE_DIR=str(repo / ".mlops"), MLFLOW_DISABLE_TELEMETRY="true",
               PYTHONPATH=str(ROOT))
    env.update(extra)
    return env


def mlops(repo: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ml_service.cli", *args], cwd=repo, env=env_for(repo, **env),
                          capture_output=True, text=True, timeout=900)


def init(repo: Path, name: str, csv: Path, target: str, *extra: str) -> subprocess.CompletedProcess:
    return mlops(repo, "init", name, "--data", str(csv), "--target", target, *extra)


def snapshot(repo: Path) -> dict[str, str]:
    """Every path under repo with a hash of its content ('dir' for folders)."""
    return {p.relative_to(repo).as_posix(): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(repo.rglob("*"))}


@pytest.fixture(scope="module", params=["classification", "regression"])
def project(request, tmp_path_factory):
    """A repository in which `mlops init` created a project for a CSV file of the given task."""
    task = request.param
    base = tmp_path_factory.mktemp(task)
    repo = make_repo(base / "repo")
    csv = write_csv(base / "customers.csv", task)
    name = f"customers_{task[:5]}"
    result = init(repo, name, csv, TARGETS[task])
    assert result.returncode == 0, result.stderr
    return {"repo": repo, "name": name, "task": task, "csv": csv, "stdout": result.stdout}


def test_init_writes_the_project_data_contract_pipelines_and_entry(project):
    repo, name, task = project["repo"], project["name"], project["task"]
    for rel in ("__init__.py", "parameters.yml", "pipeline.yml", "training/train.py", "training/step.py",
                "evaluate/evaluate_model.py", "register/register_model.py", "scoring/score.py", "scoring/smoke.json",
                "scoring/deployment_config_qa.yml", "scoring/deployment_config_k8s.yml", "tests/__init__.py",
                "tests/conftest.py", "tests/test_model.py", "tests/test_data_contract.py"):
        assert (repo / name / rel).is_file(), rel
    assert (repo / "data" / f"{name}.csv").read_bytes() == project["csv"].read_bytes()
    suite = json.loads((repo / "data" / "contract" / f"{name}_suite.json").read_text())
    assert suite["expectations"][0]["kwargs"]["column_list"][-1] == TARGETS[task]
    assert sorted(p.name for p in (repo / ".pipelines").iterdir()) == [f"{name}-{k}.yml"
                                                                       for k in ("build", "release", "retrain")]
    text = (repo / "mlops.yml").read_text()
    for line in CONFIG.splitlines():
        if line.lstrip().startswith("#") or "#" in line:
            assert line in text, line
    config = yaml.safe_load(text)
    assert config["models"] == [{"project": name, "name": f"{name}_model", "task": task,
                                 "data": f"data/{name}.csv", "contract": f"data/contract/{name}_suite.json",
                                 "target": TARGETS[task], "dataset": name}]
    assert yaml.safe_load((repo / name / "parameters.yml").read_text())["evaluation"]["metric"] == \
        {"classification": "roc_auc", "regression": "r2"}[task]
    assert f"task      {task}" in project["stdout"]
    records = json.loads((repo / name / "scoring" / "smoke.json").read_text())["data"]
    assert len(records) == 2 and None in records[0].values() and TARGETS[task] not in records[0]


def test_the_generated_code_is_lint_clean(project):
    result = subprocess.run([sys.executable, "-m", "flake8", "--max-line-length", "120", project["name"]],
                            cwd=project["repo"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_the_projects_own_tests_pass(project):
    repo = project["repo"]
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"{project['name']}/tests"]
    result = subprocess.run(command, cwd=repo, env=env_for(repo, PYTHONPATH=f"{repo}{os.pathsep}{ROOT}"),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout


def test_the_pipeline_registers_version_1_then_an_identical_run_is_not_promoted(project):
    repo, name = project["repo"], project["name"]
    first = mlops(repo, "pipeline", "run", MLOPS_MODEL=name)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"registered {name}_model version 1" in first.stdout
    second = mlops(repo, "pipeline", "run", MLOPS_MODEL=name)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "not promoted" in second.stdout


@pytest.fixture(scope="module")
def busy_repo(tmp_path_factory):
    """A repository in which some names are taken: a folder, an mlops.yml entry, a data file, a contract,
    pipelines."""
    base = tmp_path_factory.mktemp("busy")
    repo = make_repo(base / "repo")
    (repo / "taken").mkdir()
    (repo / "mlops.yml").write_text(CONFIG.replace("models: []", "models:\n  - project: listed\n"
                                                                 "    name: listed_model  # keep me\n"))
    (repo / "data").mkdir()
    (repo / "data" / "held.csv").write_text("a,b\n1,2\n")
    (repo / "data" / "contract").mkdir()
    (repo / "data" / "contract" / "contracted_suite.json").write_text("{}")
    (repo / ".pipelines" / "piped-retrain.yml").write_text("trigger: none\n")
    good = write_csv(base / "good.csv", "classification")
    frame = pd.read_csv(good)
    bad = {
        "one_class.csv": frame.assign(churned="yes").to_csv(index=False).encode(),
        "empty.csv": b"",
        "binary.csv": bytes(range(256)) * 4,
        "no_header.csv": frame.head(30).to_csv(index=False, header=False).encode(),
        "few_rows.csv": frame.head(12).to_csv(index=False).encode(),
    }
    for file, content in bad.items():
        (base / file).write_bytes(content)
    return {"repo": repo, "base": base, "good": good}


@pytest.mark.parametrize("name, data, target, message", [
    ("fresh", "good.csv", "nope", "no target column 'nope'; the columns are: 'age', 'monthly income'"),
    ("fresh", "one_class.csv", "churned", "single class ('yes')"),
    ("fresh", "empty.csv", "churned", "is empty"),
    ("fresh", "binary.csv", "churned", "binary file"),
    ("fresh", "no_header.csv", "churned", "no header line"),
    ("fresh", "few_rows.csv", "churned", "has 12 data rows; at least 20"),
    ("fresh", "missing.csv", "churned", "no such file"),
    ("fresh", ".", "churned", "is a folder"),
    ("Not-A-Package", "good.csv", "churned", "not a valid Python package name"),
    ("taken", "good.csv", "churned", "taken already exists"),
    ("listed", "good.csv", "churned", "already declares project 'listed'"),
    ("held", "good.csv", "churned", "held.csv already exists"),
    ("piped", "good.csv", "churned", "piped-retrain.yml already exists"),
])
def test_bad_input_is_one_clear_line_and_changes_nothing(busy_repo, name, data, target, message, capsys, monkeypatch):
    repo = busy_repo["repo"]
    in_repo(monkeypatch, repo)
    before = snapshot(repo)
    code = main(["init", name, "--data", str(busy_repo["base"] / data), "--target", target])
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert message in err
    assert snapshot(repo) == before


def in_repo(monkeypatch, repo: Path) -> None:
    """In-process commands act on repo (the environment is restored after the test)."""
    for key, value in env_for(repo).items():
        if key.startswith("MLOPS_"):
            monkeypatch.setenv(key, value)
    for key in ("MLOPS_MODEL", "MLOPS_TRACKING_URI", "MLOPS_MODEL_NAME", "MLOPS_EXPERIMENT"):
        monkeypatch.delenv(key, raising=False)


@pytest.mark.parametrize("config", ["models: [unclosed\n", "models: {a: 1}\n", "- a list\n"])
def test_a_broken_mlops_yml_is_one_line_and_nothing_is_written(tmp_path, config, capsys, monkeypatch):
    repo = make_repo(tmp_path / "repo")
    (repo / "mlops.yml").write_text(config)
    in_repo(monkeypatch, repo)
    before = snapshot(repo)
    assert main(["init", "fresh", "--data", str(write_csv(tmp_path / "c.csv", "regression")),
                 "--target", TARGETS["regression"]]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(repo / "mlops.yml") in err
    assert snapshot(repo) == before


@pytest.mark.parametrize("pipelines_folder", [True, False])
def test_a_failure_while_writing_removes_everything_written(tmp_path, monkeypatch, pipelines_folder):
    """A stand-in for a full disk: the pipeline files are written, then the write fails. Everything init created
    goes, the .pipelines/ folder too when init created it."""
    from ml_service.ci import scaffold
    from ml_service.init import InitError
    from ml_service.init.project import init_project

    repo = make_repo(tmp_path / "repo")
    if not pipelines_folder:
        (repo / ".pipelines").rmdir()
    csv = write_csv(tmp_path / "customers.csv", "classification")
    before = snapshot(repo)
    written = scaffold.write_model_pipelines

    def half_written(root, project, watched, *args, **kwargs):
        paths = written(root, project, watched, *args, **kwargs)
        paths[-1].unlink()
        raise OSError(f"disk full while writing {paths[-1]}")
    monkeypatch.setattr(scaffold, "write_model_pipelines", half_written)
    with pytest.raises(InitError, match="nothing was kept: disk full"):
        init_project(repo, csv, "churned", project="rollback_probe")
    assert snapshot(repo) == before


@pytest.mark.parametrize("name, extra, message", [
    ("other", ["--model-name", "listed_model"], "registered model 'listed_model'"),
    ("other", ["--dataset", "held"], "held.csv already exists"),
    ("contracted", [], "contracted_suite.json already exists"),
    # a project name that differs only in case is the same folder on some systems (names.py lowers both)
    ("Listed", ["--model-name", "other_model"], "already declares project 'listed'"),
])
def test_a_taken_registered_name_data_set_or_contract_is_refused(busy_repo, name, extra, message, capsys,
                                                                 monkeypatch):
    repo = busy_repo["repo"]
    in_repo(monkeypatch, repo)
    before = snapshot(repo)
    assert main(["init", name, "--data", str(busy_repo["good"]), "--target", "churned", *extra]) == 1
    assert message in capsys.readouterr().err
    assert snapshot(repo) == before


def test_the_options_name_the_registered_model_and_the_data_set_and_the_task_beats_the_guess(tmp_path, monkeypatch):
    repo = make_repo(tmp_path / "repo")
    in_repo(monkeypatch, repo)
    frame = pd.read_csv(write_csv(tmp_path / "c.csv", "classification"))
    frame["visits"] = np.arange(len(frame)) % 3  # three whole numbers: guessed a classification
    frame.to_csv(tmp_path / "visits.csv", index=False)
    assert main(["init", "visits_model", "--data", str(tmp_path / "visits.csv"), "--target", "visits",
                 "--model-name", "Visits-Reg", "--dataset", "site_visits", "--task", "regression"]) == 0
    entry = yaml.safe_load((repo / "mlops.yml").read_text())["models"][0]
    assert entry == {"project": "visits_model", "name": "Visits-Reg", "task": "regression",
                     "data": "data/site_visits.csv", "contract": "data/contract/site_visits_suite.json",
                     "target": "visits", "dataset": "site_visits"}
    assert (repo / "data" / "site_visits.csv").read_bytes() == (tmp_path / "visits.csv").read_bytes()
    assert json.loads((repo / entry["contract"]).read_text())["meta"]["task"] == "regression"
    assert yaml.safe_load((repo / "visits_model" / "parameters.yml").read_text())["evaluation"]["metric"] == "r2"


def test_data_already_in_place_is_used_where_it_is(tmp_path, monkeypatch):
    """The CSV file is already data/<name>.csv: init adopts it (no copy, no 'already exists')."""
    from ml_service.init.project import init_project

    repo = make_repo(tmp_path / "repo")
    (repo / "data").mkdir()
    csv = write_csv(repo / "data" / "in_place.csv", "regression")
    content = csv.read_bytes()
    init_project(repo, csv, TARGETS["regression"], project="in_place")
    assert csv.read_bytes() == content and (repo / "in_place" / "training" / "train.py").is_file()
    assert yaml.safe_load((repo / "mlops.yml").read_text())["models"][0]["data"] == "data/in_place.csv"


def test_a_spreadsheets_semicolon_export_makes_the_same_project_as_its_csv_file(tmp_path):
    """Saved as Excel saves it in a decimal-comma locale (pandas: sep=';', decimal=','), or already in place
    in data/: data/ gets the standard CSV file, byte for byte what pandas writes with its defaults, and the
    contract is the same."""
    from ml_service.data.dialect import Dialect
    from ml_service.init.project import init_project

    csv = write_csv(tmp_path / "c.csv", "regression")
    pd.read_csv(csv).to_csv(tmp_path / "excel.csv", sep=";", decimal=",", index=False)
    plain = init_project(make_repo(tmp_path / "a"), csv, TARGETS["regression"], project="spend")
    excel = init_project(make_repo(tmp_path / "b"), tmp_path / "excel.csv", TARGETS["regression"], project="spend")
    assert (excel.dialect, plain.dialect) == (Dialect(";", ","), Dialect())
    assert (tmp_path / "b" / "data" / "spend.csv").read_bytes() == csv.read_bytes()
    contract = excel.entry["contract"]
    assert (tmp_path / "b" / contract).read_text() == (tmp_path / "a" / contract).read_text()
    repo = make_repo(tmp_path / "c")
    (repo / "data").mkdir()
    shutil.copy(tmp_path / "excel.csv", repo / "data" / "spend.csv")
    init_project(repo, repo / "data" / "spend.csv", TARGETS["regression"], project="spend")
    assert (repo / "data" / "spend.csv").read_bytes() == csv.read_bytes()


def test_any_column_name_reaches_mlops_yml_and_the_code_intact(tmp_path, monkeypatch, capsys):
    """A target named with spaces, quotes, a backslash and an emoji: the mlops.yml entry and the code hold it."""
    repo = make_repo(tmp_path / "repo")
    in_repo(monkeypatch, repo)
    target = 'spend "\\monthly\\" \U0001f4b0'
    frame = pd.read_csv(write_csv(tmp_path / "c.csv", "regression")).rename(columns={TARGETS["regression"]: target})
    frame.to_csv(tmp_path / "named.csv", index=False)
    assert main(["init", "named", "--data", str(tmp_path / "named.csv"), "--target", target]) == 0, \
        capsys.readouterr().err
    assert yaml.safe_load((repo / "mlops.yml").read_text())["models"][0]["target"] == target
    from ml_service.config import load_settings

    assert load_settings(env_for(repo)).model.target == target


class TestQaServesTheProject:
    """The classification project in a real QA container: records with a null and a category get labels."""

    pytestmark = [pytest.mark.integration, pytest.mark.docker]
    NAME = "init_qa_churn"

    def test_records_get_one_label_each_and_probabilities(self, docker_engine, tmp_path):
        from ml_service.config import load_settings
        from ml_service.deploy import records

        repo = make_repo(tmp_path / "repo", platform=True)
        csv = write_csv(tmp_path / "customers.csv", "classification")
        model = f"{self.NAME}_model"
        try:
            assert init(repo, self.NAME, csv, "churned").returncode == 0
            run = mlops(repo, "pipeline", "run", MLOPS_MODEL=self.NAME)
            assert f"registered {model} version 1" in run.stdout, run.stdout + run.stderr
            deployed = mlops(repo, "deploy", "qa", "--model", f"{model}:1", MLOPS_MODEL=self.NAME)
            assert deployed.returncode == 0, deployed.stdout + deployed.stderr
            url = records.current(load_settings(env_for(repo, MLOPS_MODEL=self.NAME)), "qa", model).url
            assert url.startswith("http://127.0.0.1:")
            payload = {"data": [
                {"age": 41, "monthly income": None, "plan-type": "premium", "region": None, "is active": True},
                {"age": 67, "monthly income": 3100.5, "plan-type": "basic", "region": "south", "is active": False},
            ]}
            request = urllib.request.Request(f"{url}/score", json.dumps(payload).encode(), method="POST",
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as response:
                body = json.load(response)
            assert body["classes"] == ["no", "yes"]
            assert len(body["result"]) == 2 and set(body["result"]) <= {"no", "yes"}
            assert [len(row) for row in body["probabilities"]] == [2, 2]
            assert all(abs(sum(row) - 1) < 1e-6 for row in body["probabilities"])
        finally:
            for container in docker_engine.containers.list(all=True, filters={"label": f"mlops.model.name={model}"}):
                container.remove(force=True)
            for image in docker_engine.images.list(name=f"mlops/{model}"):
                docker_engine.images.remove(image.id, force=True)


@pytest.mark.parametrize("spelled", ["dotted", "linked"])
def test_data_already_in_place_is_recognised_however_its_path_is_spelled(tmp_path, spelled):
    """The data file named through `..` or a link to the repository is the same file (project.py compares
    resolved paths): adopted where it is, not copied onto itself."""
    from ml_service.init.project import init_project

    repo = make_repo(tmp_path / "repo")
    (repo / "data").mkdir()
    csv = write_csv(repo / "data" / "spelled.csv", "regression")
    content = csv.read_bytes()
    if spelled == "dotted":
        given = repo / ".pipelines" / ".." / "data" / "spelled.csv"
    else:
        (tmp_path / "link").symlink_to(repo)
        given = tmp_path / "link" / "data" / "spelled.csv"
    init_project(repo, given, TARGETS["regression"], project="spelled")
    assert csv.read_bytes() == content and (repo / "spelled" / "training" / "train.py").is_file()
    assert sorted(p.name for p in (repo / "data").iterdir()) == ["contract", "spelled.csv"]
