"""KServe's Python model server for bench/serving.py: a kserve.Model that loads the same scikit-learn model.

Written as KServe's own sklearnserver does it (kserve.utils' get_predict_input / get_predict_response), so
the v1 route (/v1/models/NAME:predict, {"instances": [[...]]}) and Open Inference Protocol v2
(/v2/models/NAME/infer) answer the same way. One uvicorn worker, gRPC off, everything else KServe's
defaults. KServe binds 0.0.0.0 with no option to change it: the benchmark binds 127.0.0.1 only, so the
uvicorn config KServe builds is given that host. Runs in its own environment (bench/peers/build.sh).

Usage: python bench/peers/kserve_server.py MODEL_PKL NAME PORT
"""
from __future__ import annotations

import sys

import joblib
import kserve
import uvicorn
from kserve.protocol.rest import server as rest_server
from kserve.utils.utils import get_predict_input, get_predict_response


class LocalConfig(uvicorn.Config):
    """uvicorn.Config on 127.0.0.1 whatever host KServe asks for."""

    def __init__(self, *args, **kwargs):
        kwargs["host"] = "127.0.0.1"
        super().__init__(*args, **kwargs)


class SKLearnModel(kserve.Model):
    """The model at a pickle path, scored as KServe's sklearnserver scores it."""

    def __init__(self, name: str, path: str):
        super().__init__(name)
        self.path = path
        self.model = None
        self.load()

    def load(self) -> bool:
        """Load the pickled estimator."""
        self.model = joblib.load(self.path)
        self.ready = True
        return self.ready

    def predict(self, payload, headers=None, response_headers=None):
        """Predictions for a v1 dict or a v2 InferRequest."""
        instances = get_predict_input(payload)
        return get_predict_response(payload, self.model.predict(instances), self.name)


if __name__ == "__main__":
    path, name, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rest_server.uvicorn.Config = LocalConfig
    kserve.ModelServer(http_port=port, workers=1, enable_grpc=False).start([SKLearnModel(name, path)])
