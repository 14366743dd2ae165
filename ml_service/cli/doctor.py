"""`mlops doctor`: check what the flow needs here and say what to do (--fix sets up what it can)."""
from __future__ import annotations

import sys

from ml_service.cli.support import command_settings
from ml_service import doctor
from ml_service.doctor import FAIL, OK, WARN


def cmd_doctor(args) -> int:
    """Check the machine; with --fix set up what can be set up here."""
    settings = command_settings(args)
    checks = doctor.run_checks(settings)
    if args.fix and any(c.state == FAIL and c.script for c in checks):
        how = doctor.can_bootstrap()
        if how is not None:
            for check in [c for c in checks if c.state == FAIL and c.script]:
                if not doctor.bootstrap(settings, check, how):
                    break
            checks = doctor.run_checks(settings)
    for check in checks:
        print(f"{check.state:<5} {check.name:<14} {check.detail}")
        if check.state != OK and check.fix:
            print(f"      {'' if check.state == WARN else 'to fix: '}{check.fix}")
    failed = [c for c in checks if c.state == FAIL]
    if failed:
        print(f"{len(failed)} problem(s) stop the flow; run the command(s) above", file=sys.stderr)
        return 1
    return 0


def add_commands(groups) -> None:
    """Register `mlops doctor`."""
    parser = groups.add_parser("doctor", help="check what the flow needs here (Docker, base image, workspace, "
                                              "git hooks, helm) and say what to do")
    parser.add_argument("--fix", action="store_true", help="set up the Docker engine and the base image when "
                                                           "root or password-less sudo allows it")
    parser.set_defaults(func=cmd_doctor)
