"""A tiny model project for the tuning tests, written into a temp root: one parameter `w` (the slope of y = w*x),
a train step that holds out every fifth row, reports its error after each of 5 epochs (so trials can be pruned)
and sleeps `sleep` seconds an epoch (so a trial can be killed in its middle); the best w is near 3.

The train function is plain Python (no scikit-learn): the tests measure the platform, not a model.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

TRAIN = '''
"""The train step of the tuning tests' project."""
import csv
import json
import time
from pathlib import Path


def run(inputs, params, output_dir, context):
    with open(inputs["data"]) as handle:
        rows = [(float(r["x"]), float(r["y"])) for r in csv.DictReader(handle)]
    test = rows[::5]
    train = [r for i, r in enumerate(rows) if i % 5]
    w = 1.0 if params.get("w") is None else float(params["w"])
    report = context.get("report")
    mse = sum((y - w * x) ** 2 for x, y in test) / len(test)
    for epoch in range(5):
        time.sleep(float(params.get("sleep") or 0))
        if report:
            report(epoch, mse * (1 + (4 - epoch) / 4))
    with open(Path(output_dir) / "test.csv", "w") as handle:
        handle.write("x,y\\n" + "".join(f"{x!r},{y!r}\\n" for x, y in test))
    (Path(output_dir) / "model.json").write_text(json.dumps({"w": w, "train_rows": len(train)}))
    return {"metrics": {"mse": mse, "w": w}}
'''

PARAMETERS = """
evaluation:
  metric: mse
  higher_is_better: false
tuning:
  step: train
  trials: {trials}
  heartbeat_seconds: 1
  seed: 7
  search_space:
    w: {{type: float, low: 0.0, high: 6.0}}
"""

PIPELINE = """
name: tinyproj-retrain
params: {{w: null, sleep: {sleep}}}
steps:
  tune:
    tune: train
    params: {{trials: {trials}}}
  train:
    function: tinyproj.train:run
    inputs:
      data: {{path: $data}}
    params: {{w: $w, sleep: $sleep}}
"""


def write_project(root: Path, trials: int = 6, sleep: float = 0.0, rows: int = 200) -> Path:
    """The project under root (mlops.yml, tinyproj/, data/tiny.csv); root."""
    import random

    (root / "tinyproj").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "mlops.yml").write_text(textwrap.dedent("""
        models:
          - project: tinyproj
            name: tiny_model
            data: data/tiny.csv
            target: y
    """))
    (root / "tinyproj" / "__init__.py").write_text('"""The tuning tests\' project."""\n')
    (root / "tinyproj" / "train.py").write_text(TRAIN)
    (root / "tinyproj" / "parameters.yml").write_text(PARAMETERS.format(trials=trials))
    (root / "tinyproj" / "pipeline.yml").write_text(PIPELINE.format(trials=trials, sleep=sleep))
    generator = random.Random(11)
    lines = ["x,y"]
    for _ in range(rows):
        x = generator.uniform(0, 10)
        lines.append(f"{x!r},{3 * x + generator.gauss(0, 1)!r}")
    (root / "data" / "tiny.csv").write_text("\n".join(lines) + "\n")
    return root
