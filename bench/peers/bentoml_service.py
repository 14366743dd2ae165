"""BentoML for bench/serving.py: a service (one worker) that loads the same scikit-learn model.

Two APIs: BentoML's native one (POST /predict, {"rows": [[...], ...]} -> [...]) and the Open Inference
Protocol v2 request written as a BentoML API at /v2/models/NAME/infer (BentoML has no v2 protocol of its
own): the request's fields are the API's parameters, checked by BentoML's pydantic models. Runs in its own
environment (bench/peers/build.sh); the model's path and name come from MODEL_PKL and MODEL_NAME.

Usage: MODEL_PKL=... MODEL_NAME=... bentoml serve bentoml_service:Diabetes --working-dir bench/peers
       --host 127.0.0.1 --port PORT
"""
from __future__ import annotations

import os
import uuid

import bentoml
import joblib
import numpy as np
from pydantic import BaseModel

NAME = os.environ.get("MODEL_NAME", "model")


class Tensor(BaseModel):
    """One v2 input tensor."""

    name: str
    shape: list[int]
    datatype: str
    data: list


@bentoml.service(workers=1)
class Diabetes:
    """The scikit-learn model in MODEL_PKL."""

    def __init__(self):
        self.model = joblib.load(os.environ["MODEL_PKL"])

    @bentoml.api
    def predict(self, rows: list[list[float]]) -> list[float]:
        """BentoML's own way: rows in, predictions out."""
        return self.model.predict(np.asarray(rows, dtype=np.float64)).tolist()

    @bentoml.api(route=f"/v2/models/{NAME}/infer")
    def infer(self, inputs: list[Tensor], id: str | None = None) -> dict:
        """Open Inference Protocol v2: one [rows, features] FP64 input."""
        tensor = inputs[0]
        result = self.model.predict(np.asarray(tensor.data, dtype=np.float64).reshape(tensor.shape))
        return {"model_name": NAME, "id": id or str(uuid.uuid4()),
                "outputs": [{"name": "predict", "datatype": "FP64", "shape": list(result.shape),
                             "data": result.tolist()}]}
