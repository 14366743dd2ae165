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
