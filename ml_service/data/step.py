"""The data-validation pipeline step: the contract must pass before anything trains."""
from __future__ import annotations

import shutil
from pathlib import Path

from ml_service.data.contract import DataContractError, validate_file
from ml_service.data.report import write_report


def validate(inputs: dict[str, Path], params: dict, output_dir: Path, context: dict) -> dict:
    """Validate inputs['data'] against inputs['suite']; fail naming every failed expectation."""
    result = validate_file(inputs["data"], inputs["suite"])
    report = write_report(result, Path(context["reports_dir"]))
    shutil.copy(report, output_dir / "data_validation.html")
    print(result.summary())
    if not result.success:
        raise DataContractError(f"{result.summary()}\nreport: {report}")
    return {"metrics": {"rows": result.rows, "expectations_passed": len(result.checks)}}
