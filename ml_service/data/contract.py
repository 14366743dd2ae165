"""Run a Great Expectations 1.x expectation suite (JSON in the repo) against a CSV file.

Great Expectations is imported only inside `validate_frame`, so importing this module is cheap.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ml_service.errors import UsageError


class DataContractError(UsageError):
    """The data or the suite cannot be read at all (before any expectation runs)."""


@dataclass(frozen=True)
class Check:
    """The outcome of one expectation."""

    expectation: str
    column: str
    success: bool
    detail: str


@dataclass
class ValidationResult:
    """All checks of one suite against one file."""

    data_path: Path
    suite_name: str
    rows: int
    checks: list[Check] = field(default_factory=list)

    @property
    def success(self) -> bool:
        """True when every expectation passed."""
        return all(check.success for check in self.checks)

    @property
    def failures(self) -> list[Check]:
        """The checks that failed, in suite order."""
        return [check for check in self.checks if not check.success]

    def summary(self) -> str:
        """One line per failed expectation, naming the expectation and the column."""
        if self.success:
            return f"{self.data_path}: all {len(self.checks)} expectations of '{self.suite_name}' passed"
        lines = [f"{self.data_path}: {len(self.failures)} of {len(self.checks)} expectations failed:"]
        lines += [f"  - {c.expectation} [{c.column or 'table'}]: {c.detail}" for c in self.failures]
        return "\n".join(lines)


def load_suite_dict(suite_path: Path) -> dict:
    """Read and sanity-check the suite JSON."""
    try:
        data = json.loads(Path(suite_path).read_text())
    except FileNotFoundError:
        raise DataContractError(f"{suite_path}: expectation suite not found") from None
    except json.JSONDecodeError as exc:
        raise DataContractError(f"{suite_path}: malformed JSON at line {exc.lineno}: {exc.msg}") from None
    if not isinstance(data, dict) or not isinstance(data.get("expectations"), list):
        raise DataContractError(f"{suite_path}: not an expectation suite (no 'expectations' list)")
    return data


def read_csv(data_path: Path, any_dialect: bool = False):
    """Load a CSV into pandas with a clear error when it cannot be read. any_dialect: a file that separates
    fields otherwise (semicolons and decimal commas, tabs, ...) is read as the standard CSV file `mlops data add`
    keeps of it (ml_service/data/dialect.py); without it, only as the pipelines read data/ (pandas' defaults)."""
    import io

    import pandas as pd

    from ml_service.data import dialect

    try:
        found = dialect.of(data_path) if any_dialect else dialect.Dialect()
        if not found.standard:
            return pd.read_csv(io.StringIO(dialect.standard_text(data_path, found)))
        return pd.read_csv(data_path)
    except FileNotFoundError:
        raise DataContractError(f"{data_path}: data file not found") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataContractError(f"{data_path}: not a readable CSV file: {exc}") from None


def validate_file(data_path: Path, suite_path: Path, any_dialect: bool = False) -> ValidationResult:
    """Validate one CSV file against the suite (any_dialect: see read_csv)."""
    suite = load_suite_dict(suite_path)
    frame = read_csv(data_path, any_dialect)
    return validate_frame(frame, suite, Path(data_path))


def validate_frame(frame, suite: dict, data_path: Path) -> ValidationResult:
    """Validate a pandas frame against a suite dict, returning every check's outcome."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    try:
        gx_suite = gx.ExpectationSuite(
            name=suite.get("name", "suite"), expectations=suite["expectations"], meta=suite.get("meta")
        )
    except Exception as exc:  # GX raises several types for a bad expectation definition
        raise DataContractError(f"invalid expectation in suite '{suite.get('name')}': {exc}") from None
    source = context.data_sources.add_pandas("contract")
    batch = source.add_dataframe_asset("data").add_batch_definition_whole_dataframe("all")
    outcome = batch.get_batch(batch_parameters={"dataframe": frame}).validate(gx_suite)

    result = ValidationResult(data_path=data_path, suite_name=gx_suite.name, rows=len(frame))
    columns = {str(c) for c in frame.columns}
    for item in outcome.results:
        config = item.expectation_config
        result.checks.append(
            Check(
                expectation=config.type,
                column=str(config.kwargs.get("column", "")),
                success=bool(item.success),
                detail=_detail(item, columns),
            )
        )
    return result


def _detail(item, columns: set[str]) -> str:
    column = item.expectation_config.kwargs.get("column")
    if column is not None and column not in columns:
        return f"column '{column}' is missing"
    message = _exception_message(item.exception_info or {})
    if message:
        return f"could not be evaluated: {message}"
    res = item.result or {}
    if res.get("unexpected_count"):
        sample = ", ".join(repr(v) for v in (res.get("partial_unexpected_list") or [])[:5])
        return f"{res['unexpected_count']} unexpected value(s), e.g. {sample}"
    if res.get("observed_value") is not None:
        return f"observed {res['observed_value']!r}"
    return "passed" if item.success else "failed"


def _exception_message(info: dict) -> str:
    """GX nests exception info per metric; return the first message found."""
    if info.get("raised_exception") or info.get("exception_message"):
        lines = str(info.get("exception_message") or "error").strip().splitlines()
        return lines[-1] if lines else "error"
    for value in info.values():
        if isinstance(value, dict):
            message = _exception_message(value)
            if message:
                return message
    return ""
