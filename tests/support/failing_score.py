"""A score module that misbehaves on purpose, chosen by the first value of the first row.

1: a NaN prediction; 2: one prediction too few; 3: numpy float32 values; 4: a pandas Series of labels;
5: a one-column DataFrame; 6: labels with one probability row too few; 7: refuses the rows (InputError, as
MLflow's schema enforcement does); anything else: an exception with a detail the client must never see.
"""
INPUT = "rows"


def init(model_dir=None):
    pass


def run(data):
    mode = data[0][0]
    if mode == 1:
        return [float("nan")] * len(data)
    if mode == 2:
        return [0.0] * (len(data) - 1)
    if mode in (3, 4, 5):
        import numpy as np
        import pandas as pd

        if mode == 3:
            return np.arange(len(data), dtype=np.float32)
        if mode == 4:
            return pd.Series(["yes"] * len(data))
        return pd.DataFrame({"y": np.ones(len(data))})
    if mode == 6:
        return {"result": ["a"] * len(data), "probabilities": [[0.5, 0.5]] * (len(data) - 1), "classes": ["a", "b"]}
    if mode == 7:
        from ml_service.serving.schema import InputError

        raise InputError("mode 7 refuses every row")
    raise RuntimeError("secret internal detail")
