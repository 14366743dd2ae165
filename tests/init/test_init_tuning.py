"""`mlops init` writes a search space for the estimator it chooses: the parameters.yml of each task, rendered as
init renders it, parses as a tuning section whose parameters are the train step's (pipeline.yml's) own."""
from __future__ import annotations

import re

import pytest
import yaml

from ml_service.init.scaffold import MODELS, TEMPLATES, render
from ml_service.tune.space import parse_tuning


@pytest.mark.parametrize("task", sorted(MODELS))
def test_init_writes_a_valid_search_space_on_the_estimators_own_parameter(task):
    estimator, hyper, algorithm = MODELS[task]
    values = {"project": "churn", "model_name": "churn_model", "dataset": "churn", "data": "data/churn.csv",
              "task": task, "metric": "roc_auc", "estimator": estimator, "hyper": hyper, "algorithm": algorithm,
              "target": '"churned"', "features": "[]", "categorical": "[]"}
    parameters = yaml.safe_load(render((TEMPLATES / f"parameters.yml.{task}.tmpl").read_text(), values))
    tuning = parse_tuning(parameters, "churn/parameters.yml")
    assert [p.name for p in tuning.params] == [hyper] and tuning.params[0].log
    assert hyper in parameters["training"]["model"]  # the train step overrides the estimator's argument
    pipeline = yaml.safe_load(render((TEMPLATES / "pipeline.yml.tmpl").read_text(), values))
    assert pipeline["steps"][tuning.step]["params"][hyper] == f"${hyper}" and pipeline["params"][hyper] is None
    assert re.search(r"#\s+tune: train", (TEMPLATES / "pipeline.yml.tmpl").read_text())
