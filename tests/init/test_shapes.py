"""`mlops init` on the shapes of table users bring, each built here: a row index without a name, identifier
columns, a file sorted by its target, whole-number columns with nulls only at serve time, a wide sparse one-hot
table; project names that are substrings of platform words. Each project passes its own tests; one goes through
the pipeline, batch scoring of its original file (identifier columns and all) and drift's reference predictions."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT
from tests.init.test_init import env_for, init, make_repo, mlops

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def houses(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"size": rng.normal(120, 30, rows).round(1), "rooms": rng.integers(1, 7, rows),
                          "area": rng.choice(["north", "south", "east"], rows)})
    frame["price"] = (frame["size"] * 1500 + frame["rooms"] * 9000
                      + frame["area"].map({"north": 0, "south": 20000, "east": -10000}) + rng.normal(0, 8000, rows))
    frame["price"] = frame["price"].round(0)
    return frame


def pandas_index(rows: int = 200) -> pd.DataFrame:
    """What `frame.to_csv(path)` writes: an unnamed row index first."""
    return houses(rows, 1)


def identifiers(rows: int = 240) -> pd.DataFrame:
    """rownames (R), an id, a name per row, a row counter: none of them features; a 0/1 target."""
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"rownames": np.arange(1, rows + 1), "passenger id": rng.permutation(rows) + 10_000,
                          "Name": [f"Passenger {i}, Mr. {chr(65 + i % 26)}" for i in range(rows)],
                          "fare": rng.gamma(2.0, 15.0, rows).round(2), "sex": rng.choice(["male", "female"], rows),
                          "class": rng.integers(1, 4, rows)})
    odds = -1.0 + 1.8 * (frame["sex"] == "female") - 0.5 * (frame["class"] - 2) + rng.normal(0, 0.7, rows)
    frame["survived"] = (odds > 0).astype(int)
    frame.loc[rng.choice(rows, 20, replace=False), "fare"] = np.nan
    return frame


def sorted_leak(rows: int = 200) -> pd.DataFrame:
    """Sorted by the target, with a ticket number handed out in that order (repeats: not an identifier)."""
    frame = houses(rows, 3).sort_values("price").reset_index(drop=True)
    frame.insert(0, "ticket", np.arange(rows) // 2 + 5000)
    return frame


def whole_numbers(rows: int = 200) -> pd.DataFrame:
    """Whole-number features without a single null in the file (nulls come only at serve time); 3 classes."""
    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"age": rng.integers(18, 90, rows), "visits": rng.integers(0, 30, rows),
                          "children": rng.integers(0, 5, rows), "flag": rng.choice([True, False], rows)})
    frame["segment"] = np.select([frame["age"] < 40, frame["visits"] > 15], ["young", "loyal"], "other")
    return frame


def wide_one_hot(rows: int = 600) -> pd.DataFrame:
    """Thirty text columns of up to forty categories each (a sparse one-hot table of ~1,000 columns) and a
    price near 200,000: Ridge's iterative sparse solver moved predictions by hundreds here."""
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({f"Cat.{i}": rng.choice([f"v{j}" for j in range(40)], rows) for i in range(30)})
    frame["Lot Area"] = rng.integers(2000, 20000, rows)
    effect = sum((frame[f"Cat.{i}"].str[1:].astype(int) - 20) * 150 for i in range(30))
    frame["SalePrice"] = (180_000 + frame["Lot Area"] * 2 + effect + rng.normal(0, 5000, rows)).round(0)
    return frame


SHAPES = {  # project name -> (table, target, write the index?)
    "names": (pandas_index, "price", True),
    "age": (identifiers, "survived", False),
    "model": (sorted_leak, "price", False),
    "ames": (whole_numbers, "segment", False),
    "Wide_Build": (wide_one_hot, "SalePrice", False),
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """One repository with a project for every shape."""
    base = tmp_path_factory.mktemp("shapes")
    repo = make_repo(base / "repo", platform=False)
    outputs = {}
    for name, (build, target, index) in SHAPES.items():
        csv = base / f"{name}.csv"
        build().to_csv(csv, index=index)
        result = init(repo, name, csv, target)
        assert result.returncode == 0, result.stderr
        outputs[name] = result.stdout
    return {"repo": repo, "base": base, "stdout": outputs}


def features(repo, name) -> list[str]:
    namespace: dict = {}
    exec(compile((repo / name / "training" / "features.py").read_text().split("\ndef ")[0], "features", "exec"),
         namespace)
    return namespace["FEATURES"]


@pytest.mark.parametrize("name", list(SHAPES))
def test_each_project_passes_its_own_tests(repo, name):
    root = repo["repo"]
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"{name}/tests"]
    result = subprocess.run(command, cwd=root, env=env_for(root, PYTHONPATH=f"{root}{os.pathsep}{ROOT}"),
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_row_indexes_and_identifiers_are_not_features(repo):
    root = repo["repo"]
    assert features(root, "names") == ["size", "rooms", "area"]
    assert features(root, "age") == ["fare", "sex", "class"]
    suite = json.loads((root / "data" / "contract" / "age_suite.json").read_text())
    assert set(suite["meta"]["not_features"]) == {"rownames", "passenger id", "Name"}


def test_a_feature_that_follows_a_sorted_files_order_is_warned_about(repo):
    assert "'ticket'" in repo["stdout"]["model"] and "ticket" in features(repo["repo"], "model")
    assert "'ticket'" not in repo["stdout"]["names"]


def test_a_zero_one_target_is_pinned_to_zero_and_one(repo):
    suite = json.loads((repo["repo"] / "data" / "contract" / "age_suite.json").read_text())
    ranges = [e["kwargs"] for e in suite["expectations"]
              if e["type"] == "expect_column_values_to_be_between" and e["kwargs"]["column"] == "survived"]
    values = [e["kwargs"] for e in suite["expectations"]
              if e["type"] == "expect_column_values_to_be_in_set" and e["kwargs"]["column"] == "survived"]
    assert [(r["min_value"], r["max_value"]) for r in ranges] == [(0, 1)] and not values


def test_the_pipeline_batch_scores_the_original_file_and_drift_gets_reference_predictions(repo):
    """The identifier project through the pipeline; its original file (identifiers, target, a null fare) is
    scored in batch; MLflow's pyfunc predicts on it for drift's reference."""
    from ml_service.config import load_settings
    from ml_service.monitor.check import reference_predictions
    from ml_service.workspace import tracking

    root, name = repo["repo"], "age"
    run = mlops(root, "pipeline", "run", MLOPS_MODEL=name)
    assert "registered age_model version 1" in run.stdout, run.stdout[-3000:] + run.stderr[-3000:]
    original = root / "data" / "age.csv"
    frame = pd.read_csv(original)
    scored = mlops(root, "batch", "score", "--model", "age_model:1", "--input", str(original), "--output",
                   str(repo["base"] / "scored"), "--workers", "1", MLOPS_MODEL=name)
    assert scored.returncode == 0, scored.stdout[-3000:] + scored.stderr[-3000:]
    parts = pd.read_parquet(repo["base"] / "scored")
    assert len(parts) == len(frame)
    assert not (repo["base"] / "scored" / "_rejects").exists()
    gaps = frame.drop(columns=["survived"]).astype({"class": "float64", "sex": object})
    gaps.loc[::3, "class"] = np.nan  # whole numbers in training (long in the signature), null only now
    gaps.loc[1::3, "sex"] = None
    gaps.to_csv(repo["base"] / "gaps.csv", index=False)
    with_gaps = mlops(root, "batch", "score", "--model", "age_model:1", "--input", str(repo["base"] / "gaps.csv"),
                      "--output", str(repo["base"] / "gaps"), "--workers", "1", "--max-reject-fraction", "0",
                      MLOPS_MODEL=name)
    assert with_gaps.returncode == 0, with_gaps.stdout[-3000:] + with_gaps.stderr[-3000:]
    assert len(pd.read_parquet(repo["base"] / "gaps")) == len(frame)

    settings = load_settings(env_for(root, MLOPS_MODEL=name))
    version = tracking.connect(settings).get_model_version("age_model", "1")
    predicted = reference_predictions(settings, version, frame[features(root, name)])
    assert len(predicted) == len(frame) and set(predicted) <= {0, 1}


class TestQaServesNullsInEveryColumn:
    """The identifier project in a real QA container: clients send the features only, null in any of them."""

    pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.docker]
    NAME = "shape_qa_age"

    def test_records_without_identifiers_and_with_nulls_get_labels(self, docker_engine, tmp_path):
        import urllib.error
        import urllib.request

        from ml_service.config import load_settings
        from ml_service.deploy import records

        repo = make_repo(tmp_path / "repo", platform=True)
        csv = tmp_path / "passengers.csv"
        identifiers().to_csv(csv, index=False)
        model = f"{self.NAME}_model"
        try:
            assert init(repo, self.NAME, csv, "survived").returncode == 0
            run = mlops(repo, "pipeline", "run", MLOPS_MODEL=self.NAME)
            assert f"registered {model} version 1" in run.stdout, run.stdout[-3000:] + run.stderr[-3000:]
            deployed = mlops(repo, "deploy", "qa", "--model", f"{model}:1", MLOPS_MODEL=self.NAME)
            assert deployed.returncode == 0, deployed.stdout + deployed.stderr
            url = records.current(load_settings(env_for(repo, MLOPS_MODEL=self.NAME)), "qa", model).url

            def post(rows):
                request = urllib.request.Request(f"{url}/score", json.dumps({"data": rows}).encode(), method="POST",
                                                 headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=30) as response:
                    return json.load(response)

            body = post([{"fare": None, "sex": None, "class": None}, {"fare": 7.25, "sex": "male", "class": 3},
                         {"fare": 80, "sex": "female", "class": 1.0}])
            assert len(body["result"]) == 3 and set(body["result"]) <= {0, 1}
            with pytest.raises(urllib.error.HTTPError) as refused:
                post([{"fare": 1.0, "sex": "male", "class": 1, "rownames": 4}])
            assert refused.value.code == 422
        finally:
            for container in docker_engine.containers.list(all=True, filters={"label": f"mlops.model.name={model}"}):
                container.remove(force=True)
            for image in docker_engine.images.list(name=f"mlops/{model}"):
                docker_engine.images.remove(image.id, force=True)
