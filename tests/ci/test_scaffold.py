"""The per-model pipeline files: the generator, the committed files, and the templates they share."""
from __future__ import annotations

import re

import pytest
import yaml

from ml_service.ci import scaffold
from ml_service.ci.model import triggers
from ml_service.ci.model.pipeline import normalize
from ml_service.ci.model.template import Compiler
from ml_service.ci.server import service
from ml_service.config import load_settings
from tests.conftest import ROOT

PIPELINES = ROOT / ".pipelines"
SETTINGS = load_settings({"MLOPS_ROOT": str(ROOT)})
MODELS = [m.project for m in SETTINGS.models]


@pytest.mark.parametrize("project", MODELS)
def test_the_committed_pipelines_of_every_model_are_what_the_generator_writes(project):
    model = SETTINGS.select(project).model
    arguments = scaffold.project_arguments(model, ROOT)
    texts = scaffold.model_pipeline_texts(arguments.pop("project"), arguments.pop("watched"), **arguments)
    assert sorted(texts) == sorted(f"{project}-{kind}.yml" for kind in scaffold.KINDS)
    for name, text in texts.items():
        assert (PIPELINES / name).is_file(), f"{name} is missing: regenerate it with ml_service.ci.scaffold"
        assert (PIPELINES / name).read_text() == text, f"{name} differs from what the generator writes"


def test_every_pipeline_file_belongs_to_a_model_of_mlops_yml_or_to_the_platform():
    expected = {f"{p}-{kind}" for p in MODELS for kind in scaffold.KINDS} | {"pr", "batch", "platform"}
    assert set(service.pipeline_files(ROOT)) == expected


def references(project: str, model_name: str) -> re.Pattern:
    """The ways code names a model project: its folder (`P/`), its modules (`P.training`), its pipeline files
    (`P-build`), its registered model (`models:/M`, `M@alias`, `M:version`) or `MLOPS_MODEL: P`. A name that is
    also an ordinary word (`model`, `build`, `names`) is matched only in these places, never as a substring."""
    p, m = re.escape(project), re.escape(model_name)
    start, word = r"(?<![\w./$-])", r"(?<![\w.$-])"  # the start of a path; the start of a word
    return re.compile(rf"{start}{p}(?:/|\.(?:training|scoring|evaluate|register|tests)\b)"
                      rf"|{word}{p}-(?:build|retrain|release)\b|MLOPS_MODEL\s*[:=]\s*[\"']?{p}\b"
                      rf"|models:/{m}\b|{word}{m}[@:]\w")


def test_no_template_and_no_engine_module_names_a_model():
    files = [*(PIPELINES / "templates").glob("*.yml"), *(ROOT / "ml_service" / "ci").rglob("*.py")]
    for model in SETTINGS.models:
        pattern = references(model.project, model.name)
        for path in files:
            found = pattern.search(path.read_text())
            assert found is None, f"{path} names model project {model.project}: {found.group(0)!r}"


@pytest.mark.parametrize("project", ["names", "ames", "age", "model", "build", "release", "stage", "ci", "step"])
def test_a_project_named_like_a_platform_word_is_not_taken_for_a_reference(project):
    files = [*(PIPELINES / "templates").glob("*.yml"), *(ROOT / "ml_service" / "ci").rglob("*.py")]
    pattern = references(project, f"{project}_model")
    assert not [path.name for path in files if pattern.search(path.read_text())]
    assert pattern.search(f"python -m {project}.training.step") and pattern.search(f".pipelines/{project}-build.yml")
    assert pattern.search(f"models:/{project}_model@production") and not pattern.search(f"x_{project}/y")


@pytest.mark.parametrize("project", MODELS)
def test_each_model_pipeline_sets_its_model_and_compiles_to_the_template_stages(project):
    stages = {}
    for kind in scaffold.KINDS:
        path = PIPELINES / f"{project}-{kind}.yml"
        document = Compiler(ROOT).compile(path)
        assert document["variables"] == {"MLOPS_MODEL": project}
        stages[kind] = [s.name for s in normalize(document)]
    assert stages == {"build": ["DataTests", "Quality", "Publish"], "retrain": ["Retrain", "Release"],
                      "release": ["Model", "QA", "Production"]}
    retrain = yaml.safe_load((PIPELINES / f"{project}-retrain.yml").read_text())
    release = yaml.safe_load((PIPELINES / f"{project}-release.yml").read_text())
    assert retrain["resources"]["pipelines"][0]["source"] == f"{project}-build"
    assert release["resources"]["pipelines"][0]["source"] == f"{project}-retrain"
    assert release["resources"]["pipelines"][0]["trigger"]["stages"] == ["Release"]


def test_the_build_steps_validate_the_model_data_and_run_its_tests():
    texts = scaffold.model_pipeline_texts("alpha", [], data="data/alpha.csv", contract="data/contract/alpha.json")
    document = yaml.safe_load(texts["alpha-build.yml"])
    assert document["stages"][0]["parameters"] == {"project": "alpha", "data": "data/alpha.csv",
                                                   "contract": "data/contract/alpha.json"}


def test_path_filters_select_the_builds_of_the_models_a_change_touches():
    def builds(changed):
        found = []
        for project, data in (("alpha", "data/alpha.csv"), ("beta", "data/beta.csv")):
            text = scaffold.model_pipeline_texts(project, [data])[f"{project}-build.yml"]
            if triggers.trigger_matches(yaml.safe_load(text)["trigger"], "main", changed):
                found.append(project)
        return found

    assert builds(["alpha/training/train.py"]) == ["alpha"]
    assert builds(["data/beta.csv"]) == ["beta"]
    assert builds([".pipelines/beta-release.yml"]) == ["beta"]
    for platform in ("ml_service/ci/runner/executor.py", ".pipelines/templates/build-stages.yml", "pyproject.toml",
                     "Makefile"):
        assert builds([platform]) == ["alpha", "beta"], platform
    assert builds(["tests/ci/test_x.py", "charts/scoring/values.yaml"]) == []  # the platform pipeline's
    assert builds(["docs/index.md", "alpha/README.md", "README.md"]) == []
    assert builds(["alphabet/x.py", "data/alpha.csv.bak", ".pipelines/pr.yml"]) == []


def test_writing_refuses_existing_files_unless_told_to_overwrite(tmp_path):
    written = scaffold.write_model_pipelines(tmp_path, "alpha", ["data/alpha.csv"])
    assert [p.name for p in written] == ["alpha-build.yml", "alpha-retrain.yml", "alpha-release.yml"]
    assert all(p.parent == tmp_path / ".pipelines" for p in written)
    (tmp_path / ".pipelines" / "alpha-release.yml").write_text("# edited by hand\n")
    with pytest.raises(FileExistsError, match="alpha-build.yml"):
        scaffold.write_model_pipelines(tmp_path, "alpha", ["data/other.csv"])
    assert "data/other.csv" not in (tmp_path / ".pipelines" / "alpha-build.yml").read_text()
    scaffold.write_model_pipelines(tmp_path, "alpha", ["data/other.csv"], overwrite=True)
    assert "data/other.csv" in (tmp_path / ".pipelines" / "alpha-build.yml").read_text()
    assert "edited by hand" not in (tmp_path / ".pipelines" / "alpha-release.yml").read_text()


@pytest.mark.parametrize("project, watched, error", [
    ("Bad-Name", [], "Python package name"),
    ("alpha", ["/etc/passwd"], "relative to the repository root"),
    ("alpha", ["../outside.csv"], "relative to the repository root"),
])
def test_bad_arguments_are_refused(project, watched, error):
    with pytest.raises(ValueError, match=error):
        scaffold.model_pipeline_texts(project, watched)


def test_data_without_contract_is_refused():
    with pytest.raises(ValueError, match="both data and contract"):
        scaffold.model_pipeline_texts("alpha", [], data="data/alpha.csv")


def test_watched_paths_are_quoted_when_yaml_needs_it():
    text = scaffold.model_pipeline_texts("alpha", ["data/it's here.csv", "data/*.parquet"])["alpha-build.yml"]
    include = yaml.safe_load(text)["trigger"]["paths"]["include"]
    assert include[:3] == ["alpha", "data/it's here.csv", "data/*.parquet"]


def test_a_pipeline_kind_names_the_selected_model_pipeline():
    default = MODELS[0]
    assert service.resolve_file(SETTINGS, "release") == PIPELINES / f"{default}-release.yml"
    assert service.resolve_file(SETTINGS, f"{default}-build") == PIPELINES / f"{default}-build.yml"
    other = MODELS[-1]
    selected = load_settings({"MLOPS_ROOT": str(ROOT), "MLOPS_MODEL": other})
    assert service.resolve_file(selected, "build") == PIPELINES / f"{other}-build.yml"
    with pytest.raises(service.CIError, match="no pipeline 'deploy'"):
        service.resolve_file(SETTINGS, "deploy")


def test_mlops_ci_scaffold_writes_a_projects_pipelines_once(tmp_path):
    import os
    import subprocess
    import sys

    (tmp_path / "data").mkdir()
    (tmp_path / "mlops.yml").write_text("models:\n  - {project: churn, name: churn_model, data: data/churn.csv, "
                                        "contract: data/churn_suite.json, target: y}\n")
    env = {**os.environ, "MLOPS_ROOT": str(tmp_path), "MLOPS_STATE_DIR": str(tmp_path / "state")}
    env.pop("MLOPS_MODEL", None)

    def mlops(*args):
        return subprocess.run([sys.executable, "-m", "ml_service.cli", "ci", "scaffold", *args], env=env,
                              capture_output=True, text=True)

    first = mlops()
    assert first.returncode == 0, first.stderr
    texts = scaffold.model_pipeline_texts("churn", ["data/churn.csv", "data/churn_suite.json"],
                                          data="data/churn.csv", contract="data/churn_suite.json")
    for name, text in texts.items():
        assert (tmp_path / ".pipelines" / name).read_text() == text
    (tmp_path / ".pipelines" / "churn-build.yml").write_text("edited by hand\n")
    again = mlops()
    assert again.returncode == 1 and "churn-build.yml already exists" in again.stderr
    assert (tmp_path / ".pipelines" / "churn-build.yml").read_text() == "edited by hand\n"
    assert mlops("--overwrite").returncode == 0
    assert (tmp_path / ".pipelines" / "churn-build.yml").read_text() == texts["churn-build.yml"]
