import pickle

import pytest
from sklearn.linear_model import Ridge

from diabetes_regression.scoring import score

ROWS = [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]]


@pytest.fixture
def model_dir(tmp_path):
    model = Ridge().fit([[float(i + j) for j in range(10)] for i in range(20)], list(range(20)))
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(model))
    (tmp_path / "MLmodel").write_text("flavors:\n  sklearn:\n    pickled_model: model.pkl\n"
                                      "    serialization_format: pickle\n")
    return tmp_path


def test_init_from_model_dir_env_then_run(model_dir, monkeypatch):
    monkeypatch.setenv("MODEL_DIR", str(model_dir))
    score.init()
    result = score.run(ROWS)
    assert len(result) == 2 and all(isinstance(v, float) for v in result)


@pytest.mark.parametrize("data, message", [
    ([], "non-empty"),
    ({"data": ROWS}, "non-empty list"),
    ([[1, 2, 3]], "row 0 must be a list of 10"),
    ([[1, 2, 3, 4, 5, 6, 7, 8, 9, "x"]], "column 9 .S6. is not a number"),
    ([[1, 2, 3, 4, 5, 6, 7, 8, 9, float("nan")]], "not finite"),
    ([[1, 2, 3, 4, 5, 6, 7, 8, 9, True]], "not a number"),
])
def test_bad_rows_are_refused_with_the_reason(model_dir, data, message):
    score.init(model_dir)
    with pytest.raises(score.ScoringError, match=message):
        score.run(data)


def test_corrupt_model_gets_a_clear_error(tmp_path):
    (tmp_path / "model.pkl").write_bytes(b"not a pickle")
    with pytest.raises(RuntimeError, match="corrupt or incompatible"):
        score.init(tmp_path)


def test_missing_model_dir_is_explained(monkeypatch):
    monkeypatch.delenv("MODEL_DIR", raising=False)
    with pytest.raises(RuntimeError, match="set MODEL_DIR"):
        score.init()


@pytest.mark.parametrize("n_rows", [2, score.SMALL_BATCH, score.SMALL_BATCH + 1, 5000])
def test_a_batch_frame_gets_the_very_predictions_its_rows_get(model_dir, n_rows):
    import numpy as np
    import pandas as pd

    score.init(model_dir)
    values = np.random.default_rng(7).normal(50, 30, (n_rows, 10))
    frame = pd.DataFrame(values, columns=score.FEATURES)
    from_frame, from_rows = score.run(frame), score.run(values.tolist())
    assert np.asarray(from_frame, dtype="float64").tobytes() == np.asarray(from_rows, dtype="float64").tobytes()


@pytest.mark.parametrize("values, message", [
    ([[1.0] * 9], "must have 10 columns"),
    ([[1.0] * 9 + [float("inf")]], r"row 0, column 9 \(S6\) is not finite"),
])
def test_a_bad_batch_frame_is_refused_with_the_reason(model_dir, values, message):
    import pandas as pd

    score.init(model_dir)
    with pytest.raises(score.ScoringError, match=message):
        score.run(pd.DataFrame(values))
