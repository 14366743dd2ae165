"""The model as the registry stores it: MLflow loads it and predicts on the data file as pandas reads it
(extra columns ignored), and the scoring service takes null in every column the model imputes."""
from __future__ import annotations

import numpy as np
import pandas as pd

from breast_cancer_classification.register.register_model import imputed_columns, model_signature, signature_frame
from breast_cancer_classification.scoring import score
from breast_cancer_classification.training.features import FEATURES, model_input


def saved(model, data, path):
    """The model saved as an MLflow sklearn model with the signature and requirements the register step records
    (named requirements: inferring them imports the model again in a new Python process)."""
    import mlflow.sklearn
    import sklearn

    mlflow.sklearn.save_model(model, path, serialization_format="pickle",
                              signature=model_signature(model, signature_frame(data)),
                              pip_requirements=[f"scikit-learn=={sklearn.__version__}"])
    return path


def test_mlflow_predicts_on_the_data_file_without_the_target(model, data, model_entry, tmp_path):
    import mlflow.pyfunc

    loaded = mlflow.pyfunc.load_model(str(saved(model, data, tmp_path / "model")))
    rows = pd.read_csv(model_entry.data).drop(columns=[model_entry.target])
    predictions = np.asarray(loaded.predict(rows))
    assert len(predictions) == len(rows)
    assert np.array_equal(predictions, np.asarray(model.predict(model_input(rows))))


def test_the_scoring_schema_takes_null_in_every_imputed_column(model, data, tmp_path):
    from ml_service.serving.schema import load_schema, read_mlmodel

    path = saved(model, data, tmp_path / "model")
    schema = load_schema(read_mlmodel(path))
    assert imputed_columns(model) == set(FEATURES)
    assert [c.name for c in schema.columns if not c.required] == FEATURES
    first = model_input(data.head(1)).astype(object).where(model_input(data.head(1)).notna(), None)
    rows = schema.check([{name: None for name in FEATURES}, first.to_dict("records")[0]])
    score.init(path)
    result = score.run(schema.frame(rows))
    assert len(result if isinstance(result, list) else result["result"]) == 2
