"""The default score module: any MLflow model, loaded with mlflow.pyfunc, predicting on the request's table.

For a classifier whose underlying model has predict_proba and classes_ (a scikit-learn estimator or
pipeline, LightGBM, XGBoost, or a PythonModel that defines them), run() returns labels, probabilities and
classes; otherwise the pyfunc predictions. MLflow's own schema enforcement refusing the input is an
InputError (a 422), not a failure of the service.
"""
from __future__ import annotations

from ml_service.serving.schema import InputError

INPUT = "frame"
CLASSES: list | None = None  # set by init() when the model gives class probabilities

_model = None
_proba = None
_tensor_dtype = None  # numpy dtype when the signature is a tensor: the model then takes an array


def _probabilities(model):
    """The underlying model's (predict_proba, classes) when it has both, else (None, None)."""
    inner = None
    try:
        inner = model.get_raw_model()
    except Exception:  # not implemented by this flavor
        try:
            inner = model.unwrap_python_model()
        except Exception:  # not a PythonModel either
            return None, None
    predict_proba, classes = getattr(inner, "predict_proba", None), getattr(inner, "classes_", None)
    if not callable(predict_proba) or classes is None:
        return None, None
    return predict_proba, [c.item() if hasattr(c, "item") else c for c in classes]


def init(model_dir: str) -> None:
    """Load the MLflow model in model_dir once; a clear error when it cannot be loaded."""
    global _model, _proba, _tensor_dtype, CLASSES
    if not model_dir:
        raise RuntimeError("no model: set MODEL_DIR to an MLflow model folder or a models:/ URI")
    import mlflow.pyfunc

    try:
        _model = mlflow.pyfunc.load_model(str(model_dir))
    except Exception as exc:
        raise RuntimeError(f"the model in {model_dir} is missing, corrupt or incompatible: "
                           f"{type(exc).__name__}: {exc}") from None
    _proba, CLASSES = _probabilities(_model)
    schema = _model.metadata.get_input_schema()
    _tensor_dtype = None
    if schema is not None and schema.is_tensor_spec():
        _tensor_dtype = schema.numpy_types()[0]


def run(frame):
    """Predict on a pandas DataFrame; labels with probabilities and classes for a classifier."""
    if _model is None:
        raise RuntimeError("init() has not loaded a model")
    data = frame.to_numpy(dtype=_tensor_dtype) if _tensor_dtype is not None else frame
    try:
        predictions = _model.predict(data)
    except Exception as exc:
        if type(exc).__name__ == "MlflowException" and "enforce schema" in str(exc):
            raise InputError(f"the model refused the input: {str(exc).rpartition('Error: ')[2][:500]}") from None
        raise
    if _proba is None:
        return predictions
    return {"result": predictions, "probabilities": _proba(data), "classes": CLASSES}
