"""A score module that takes rows (INPUT = "rows"): a pickled linear model predicted in plain Python.

Also builds the model it serves: save_regressor() writes a tiny scikit-learn Ridge with an MLmodel whose
signature names ten numeric columns (the first a long), so the same folder is an MLflow sklearn model too.
"""
import json
import operator
import pickle
from pathlib import Path

INPUT = "rows"
COLUMNS = [f"f{i}" for i in range(10)]
EXAMPLE = [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]]

_linear = None


def init(model_dir):
    global _linear
    model = pickle.loads((Path(model_dir) / "model.pkl").read_bytes())
    _linear = ([float(c) for c in model.coef_], float(model.intercept_))


def run(rows):
    coef, intercept = _linear
    return [sum(map(operator.mul, coef, row)) + intercept for row in rows]


def mlmodel(signature_inputs: list | None, flavor: str = "sklearn", output: str = "float64") -> str:
    """MLmodel text for a pickled scikit-learn model in model.pkl, with a signature when given."""
    import sklearn

    text = (f"flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n    model_path: model.pkl\n"
            f"    python_version: 3.11.0\n  {flavor}:\n    pickled_model: model.pkl\n"
            f"    serialization_format: pickle\n    sklearn_version: {sklearn.__version__}\n")
    if signature_inputs is not None:
        outputs = [{"type": "tensor", "tensor-spec": {"dtype": output, "shape": [-1]}}]
        text += (f"signature:\n  inputs: {json.dumps(json.dumps(signature_inputs))}\n"
                 f"  outputs: {json.dumps(json.dumps(outputs))}\n")
    return text


def save_regressor(path: Path, signature: bool = True) -> Path:
    """A Ridge on ten columns (f0 a whole number), saved in path with an input example; without signature: untyped
    rows and no example."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 10))
    x[:, 0] = rng.integers(18, 80, size=60)
    y = x @ np.arange(1, 11) + 3.0
    path.mkdir(parents=True, exist_ok=True)
    (path / "model.pkl").write_bytes(pickle.dumps(Ridge(alpha=0.5).fit(pd.DataFrame(x, columns=COLUMNS), y)))
    inputs = [{"type": "long" if i == 0 else "double", "name": name, "required": True}
              for i, name in enumerate(COLUMNS)]
    (path / "MLmodel").write_text(mlmodel(inputs if signature else None))
    if signature:  # MLOpsPython's two smoke-test rows, as MLflow saves an input example
        (path / "input_example.json").write_text(json.dumps({"columns": COLUMNS, "data": EXAMPLE}))
    return path
