"""`mlops data ...`: data contracts."""
from __future__ import annotations

from pathlib import Path

from ml_service.cli_support import EXIT_FAILED, CommandError, command_settings


def cmd_data_validate(args) -> int:
    """Validate a data file against the model project's data contract."""
    from ml_service.data.contract import validate_file
    from ml_service.data.report import write_report

    settings = command_settings(args)
    model = settings.model
    path = Path(args.path) if args.path else model.data
    suite = Path(args.suite) if args.suite else model.contract
    if path is None or suite is None:
        raise CommandError(f"model project '{model.project}' declares no data/contract in mlops.yml: "
                           "name the file and --suite")
    result = validate_file(path, suite)
    report = write_report(result, settings.reports_dir)
    print(result.summary())
    print(f"report: {report}")
    return 0 if result.success else EXIT_FAILED


def add_commands(groups) -> None:
    """Register `mlops data`."""
    data = groups.add_parser("data", help="data contracts")
    d_sub = data.add_subparsers(dest="action", metavar="ACTION", required=True)
    validate = d_sub.add_parser("validate", help="validate a CSV file against the model project's data contract")
    validate.add_argument("path", nargs="?", help="CSV file (default: the project's data in mlops.yml)")
    validate.add_argument("--suite", help="expectation suite JSON (default: the project's contract in mlops.yml)")
    validate.set_defaults(func=cmd_data_validate)
