"""Drift's reference predictions: whole numbers are cast where the signature says double (a model recorded with
double columns predicts on its CSV file), and when the model cannot predict the whole reason is printed."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from ml_service.monitor import check
from ml_service.workspace import provenance


@pytest.fixture
def double_model(tmp_path):
    """A real MLflow model whose signature says double for a column the CSV file holds as whole numbers."""
    import mlflow.pyfunc
    import mlflow.sklearn
    from mlflow.models import infer_signature

    x = pd.DataFrame({"age": np.arange(20.0), "bmi": np.linspace(18, 30, 20)})
    model = LinearRegression().fit(x, x["age"] * 2 + x["bmi"])
    mlflow.sklearn.save_model(model, tmp_path / "m", signature=infer_signature(x, model.predict(x)),
                              pip_requirements=[])  # inferring them imports the model again in a new process
    return mlflow.pyfunc.load_model(str(tmp_path / "m"))


def test_whole_numbers_become_floats_where_the_signature_says_double(double_model):
    frame = pd.DataFrame({"age": np.arange(20), "bmi": np.linspace(18, 30, 20)})
    assert frame["age"].dtype == "int64"
    cast = check.as_signature_types(double_model, frame)
    assert cast["age"].dtype == "float64" and len(double_model.predict(cast)) == 20


def test_the_whole_reason_is_printed_when_the_model_cannot_predict(monkeypatch, capsys):
    import mlflow.pyfunc

    reason = "Incompatible input types for column rownames. " + "x" * 400 + " THE END"

    def refuse(uri):  # a stand-in for a model MLflow cannot load: the failure is what is under test
        raise ValueError(reason + "\n  second line")
    monkeypatch.setattr(mlflow.pyfunc, "load_model", refuse)
    traced = []  # the provenance check runs first (tests/workspace/test_provenance.py tests it); here it passes
    monkeypatch.setattr(provenance, "check", lambda *a: traced.append(a[1].name))
    settings = SimpleNamespace(tracking_uri="sqlite:///unused.db",
                               for_registered=lambda name: SimpleNamespace(experiment="e"))
    assert check.reference_predictions(settings, SimpleNamespace(name="m", version="1"), pd.DataFrame()) == []
    assert traced == ["m"]
    out = capsys.readouterr().out
    assert reason in out and "THE END second line" in out
