"""This project is what `mlops init` writes for its data: its code, contract and smoke payload.

When the templates (ml_service/init/templates) change, regenerate the files this test names.
"""
from __future__ import annotations

from breast_cancer_classification.tests.conftest import ROOT
from ml_service.init.names import project_names
from ml_service.init.project import render_plan


def test_the_project_is_what_init_writes(model_entry):
    names = project_names(model_entry.project, model_entry.name, model_entry.dataset)
    plan = render_plan(ROOT, model_entry.data, model_entry.target, model_entry.task, names)
    assert names.data == model_entry.data.relative_to(ROOT).as_posix()
    assert names.contract == model_entry.contract.relative_to(ROOT).as_posix()
    stale = [rel for rel, text in plan.files.items()
             if not (ROOT / rel).is_file() or (ROOT / rel).read_text(encoding="utf-8") != text]
    assert not stale, f"not what `mlops init` writes (regenerate them from the templates): {', '.join(stale)}"
