"""This project is what `mlops init` writes for its data: its code, contract, smoke payload, pipelines and its
entry in mlops.yml (a golden test: the example proves the templates, and the templates' changes show here).

When the templates (ml_service/init/templates, ml_service/ci/scaffold.py) change, regenerate the files this
test names.
"""
from __future__ import annotations

import pytest
import yaml

from breast_cancer_classification.tests.conftest import ROOT
from ml_service.ci.scaffold import model_pipeline_texts
from ml_service.init.names import project_names
from ml_service.init.project import render_plan


@pytest.fixture(scope="module")
def plan(model_entry):
    """What `mlops init` renders for this project's data and names (the task guessed from the data, as init does)."""
    names = project_names(model_entry.project, model_entry.name, model_entry.dataset)
    return render_plan(ROOT, model_entry.data, model_entry.target, None, names)


def stale(expected: dict[str, str]) -> list[str]:
    """The repository-relative paths whose file is missing or differs from its expected text."""
    return [rel for rel, text in expected.items()
            if not (ROOT / rel).is_file() or (ROOT / rel).read_text(encoding="utf-8") != text]


def test_the_project_is_what_init_writes(plan, model_entry):
    assert plan.names.data == model_entry.data.relative_to(ROOT).as_posix()
    assert plan.names.contract == model_entry.contract.relative_to(ROOT).as_posix()
    assert not stale(plan.files), f"not what `mlops init` writes (regenerate them from the templates): " \
                                  f"{', '.join(stale(plan.files))}"


def test_its_pipelines_and_its_mlops_yml_entry_are_what_init_writes(plan, model_entry):
    names = plan.names
    pipelines = {f".pipelines/{name}": text for name, text in model_pipeline_texts(
        names.project, [names.data, names.contract], data=names.data, contract=names.contract).items()}
    assert not stale(pipelines), f"not what `mlops init` writes: {', '.join(stale(pipelines))}"
    entries = yaml.safe_load((ROOT / "mlops.yml").read_text(encoding="utf-8"))["models"]
    assert [entry for entry in entries if entry["project"] == names.project] == [plan.entry]
