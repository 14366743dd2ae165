"""The drift report's figures (monitor/report.py), read back as pixels: a categorical column's training and
collected bars stand side by side, training on the left, each the share of its own sample."""
from __future__ import annotations

from ml_service.monitor import report
from ml_service.monitor.drift import ColumnDrift

TRAINING, COLLECTED = (0.122, 0.467, 0.706), (1.0, 0.498, 0.055)  # matplotlib's first two colours, C0 and C1


def pixels_of(path, colour) -> list[int]:
    """The x of every pixel of the PNG drawn in colour."""
    import matplotlib.image
    import numpy as np

    image = matplotlib.image.imread(str(path))[:, :, :3]
    ys, xs = np.nonzero(np.all(np.abs(image - np.array(colour)) < 0.03, axis=2))
    return xs.tolist()


def test_a_categorical_columns_bars_are_side_by_side_training_left_each_a_share_of_its_sample(tmp_path):
    """The same shares in samples of 10 and 30 rows: the two bars of each category are as tall as each other (each
    normalised by its own sample) and neither hides the other (training at -0.2, collected at +0.2)."""
    column = ColumnDrift("colour", "categorical", 0.0, "chi2", 0.0, 1.0, False)
    reference = ["red"] * 6 + ["blue"] * 4
    current = ["red"] * 18 + ["blue"] * 12
    path = report.figure(column, reference, current, tmp_path / "colour.png")
    training, collected = pixels_of(path, TRAINING), pixels_of(path, COLLECTED)
    assert training and collected
    assert 0.9 < len(training) / len(collected) < 1.1  # the same area: neither drawn over the other, same heights
    assert sum(training) / len(training) < sum(collected) / len(collected)  # training on the left
