"""Write data/breast_cancer.csv from scikit-learn's bundled copy (no download), and deliberately bad fixtures.

Run with `python -m breast_cancer_classification.data` (or `make data MODEL=breast_cancer_classification`).
The output is deterministic. The table is shaped like data a team brings, not like a benchmark:
ten numeric measurements in snake_case, a categorical column (`texture_grade`: the mean texture's
tertiles, replacing it), missing values in one column (~5% of `mean_smoothness`), and the target
`diagnosis` as text ("malignant" / "benign"). The rest of this project was written by `mlops init`
from that file (tests/test_generated.py checks that it still is what init writes).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

# sklearn feature name -> column name, in the file's order; "mean texture" becomes texture_grade.
FEATURES = {
    "mean radius": "mean_radius",
    "mean texture": "texture_grade",
    "mean perimeter": "mean_perimeter",
    "mean area": "mean_area",
    "mean smoothness": "mean_smoothness",
    "mean compactness": "mean_compactness",
    "mean concavity": "mean_concavity",
    "mean concave points": "mean_concave_points",
    "mean symmetry": "mean_symmetry",
    "worst radius": "worst_radius",
    "worst concave points": "worst_concave_points",
}
TARGET = "diagnosis"
GRADES = ["smooth", "medium", "coarse"]
MISSING_COLUMN, MISSING_SHARE, SEED = "mean_smoothness", 0.05, 20240611
DATA_DIR = Path(__file__).resolve().parents[1] / "data"
FIXTURES = "fixtures/breast_cancer"


def load_frame() -> pd.DataFrame:
    """The 569 rows: numeric measurements, texture_grade, gaps in mean_smoothness, diagnosis as text."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    source = pd.DataFrame(bunch.data, columns=bunch.feature_names)
    df = source[list(FEATURES)].rename(columns=FEATURES)
    df["texture_grade"] = pd.qcut(source["mean texture"], 3, labels=GRADES).astype(str)
    rng = np.random.default_rng(SEED)
    gaps = rng.choice(len(df), size=round(MISSING_SHARE * len(df)), replace=False)
    df.loc[np.sort(gaps), MISSING_COLUMN] = np.nan
    df[TARGET] = np.asarray(bunch.target_names)[bunch.target]
    return df


def bad_fixtures(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """One frame per way the data can be wrong; each must fail the data contract."""
    missing_column = df.drop(columns=["mean_radius"])
    unknown_category = df.copy()
    unknown_category.loc[[3, 10], "texture_grade"] = "silky"
    out_of_range = df.copy()
    out_of_range.loc[[2], "mean_area"] = -50.0
    out_of_range.loc[[5], "mean_area"] = 99999.0
    null_target = df.copy()
    null_target.loc[[0, 7], TARGET] = None
    return {
        "missing_column": missing_column,
        "unknown_category": unknown_category,
        "out_of_range": out_of_range,
        "null_target": null_target,
    }


def write_all(data_dir: Path = DATA_DIR) -> list[Path]:
    """Write breast_cancer.csv and fixtures/breast_cancer/*.csv under data_dir; return the written paths."""
    df = load_frame()
    (data_dir / FIXTURES).mkdir(parents=True, exist_ok=True)
    written = [data_dir / "breast_cancer.csv"]
    df.to_csv(written[0], index=False)
    for name, frame in bad_fixtures(df).items():
        written.append(data_dir / FIXTURES / f"{name}.csv")
        frame.to_csv(written[-1], index=False)
    return written


def main(argv: list[str] | None = None) -> None:
    """Command-line entry: regenerate the data files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DATA_DIR, help="data folder (default: %(default)s)")
    args = parser.parse_args(argv)
    for path in write_all(args.out):
        print(path)


if __name__ == "__main__":
    main()
