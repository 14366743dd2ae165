"""Write data/diabetes.csv from scikit-learn's bundled copy, and the deliberately bad fixtures.

Run with `python -m diabetes_regression.data` (or `make data`). The output is deterministic.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

COLUMNS = ["AGE", "SEX", "BMI", "BP", "S1", "S2", "S3", "S4", "S5", "S6"]
DATA_DIR = Path(__file__).resolve().parents[1] / "data"


def load_frame() -> pd.DataFrame:
    """The 442-row diabetes data in its original units, with target column Y."""
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes(scaled=False)
    df = pd.DataFrame(bunch.data, columns=COLUMNS)
    df["Y"] = bunch.target
    return df


def bad_fixtures(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """One frame per way the data can be wrong; each must fail the data contract."""
    missing_column = df.drop(columns=["BMI"])
    missing_values = df.copy()
    missing_values.loc[[3, 17, 40], "BP"] = None
    out_of_range = df.copy()
    out_of_range.loc[[5, 6], "AGE"] = 250.0
    out_of_range.loc[[9], "BMI"] = -3.0
    wrong_type = df.copy().astype({"S1": object})
    wrong_type.loc[[0, 1, 2], "S1"] = "high"
    return {
        "missing_column": missing_column,
        "missing_values": missing_values,
        "out_of_range": out_of_range,
        "wrong_type": wrong_type,
    }


def write_all(data_dir: Path = DATA_DIR) -> list[Path]:
    """Write diabetes.csv and fixtures/*.csv under data_dir; return the written paths."""
    df = load_frame()
    (data_dir / "fixtures" / "diabetes").mkdir(parents=True, exist_ok=True)
    written = [data_dir / "diabetes.csv"]
    df.to_csv(written[0], index=False)
    for name, frame in bad_fixtures(df).items():
        written.append(data_dir / "fixtures" / "diabetes" / f"{name}.csv")
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
