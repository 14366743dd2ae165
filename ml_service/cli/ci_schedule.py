"""`mlops ci scheduler` and `mlops ci schedules`: pipelines' `schedules:` run locally (issue 13)."""
from __future__ import annotations

import argparse
import sys


def cmd_scheduler(args) -> int:
    """Run the scheduler in the foreground, or evaluate one minute (--tick [--at TIME])."""
    from ml_service.ci.model import schedules
    from ml_service.ci.server import scheduler
    from ml_service.ci.runner.progress import Progress, summary as _summary
    from ml_service.ci.server.service import CIError, execute, open_store
    from ml_service.cli.support import command_settings

    settings = command_settings(args)
    if args.execute:
        store = open_store(settings)
        return _summary(store, execute(settings, store, args.execute, Progress()))
    if not args.tick:
        if args.at:
            raise schedules.ScheduleError("--at applies to --tick only")
        scheduler.run_forever(settings)
        return 0
    at = schedules.parse_time(args.at) if args.at else None
    found, queued = scheduler.tick(settings, at)
    for event in found:
        print(f"{event.action:<7} {event.pipeline} [{event.schedule}] on {event.branch}: {event.detail}")
    if not found:
        print("nothing due")
    code = 0
    store = open_store(settings)
    for run_id in queued:  # one failing run does not keep the others from running
        try:
            code = max(code, _summary(store, execute(settings, store, run_id, Progress())))
        except CIError as exc:
            print(f"error: {exc}", file=sys.stderr)
            code = max(code, exc.exit_code)
    return code


def cmd_schedules(args) -> int:
    """List every schedule with its next fire time (UTC) and what it last did."""
    from ml_service.ci.server import scheduler
    from ml_service.cli.support import command_settings

    rows = scheduler.overview(command_settings(args))
    if not rows:
        print("no schedules in .pipelines/*.yml")
        return 0
    print(f"{'NEXT (UTC)':<21} {'PIPELINE':<36} {'SCHEDULE':<28} {'CRON':<14} {'BRANCH':<10} {'ALWAYS':<6} LAST")
    for row in rows:
        last = []
        if row["last_fire"]:
            last.append(f"fired {row['last_fire']}" + (f" (run {row['last_run']})" if row["last_run"] else ""))
        if row["last_skip"]:
            last.append(f"skipped {row['last_skip']}")
        if row["missed"]:
            last.append(f"missed {row['missed']}")
        print(f"{row['next']:<21} {row['pipeline']:<36} {row['schedule'][:28]:<28} {row['cron']:<14} "
              f"{row['branch'][:10]:<10} {str(row['always']).lower():<6} {'; '.join(last) or '-'}")
    return 0


def add_commands(sub) -> None:
    """Register the schedule actions on the `mlops ci` sub-parser."""
    run = sub.add_parser("scheduler", help="run pipelines when their schedules: fire (foreground; --tick: once)")
    run.add_argument("--tick", action="store_true", help="evaluate one minute, run what is due, and exit "
                                                         "(for cron, systemd timers and tests)")
    run.add_argument("--at", metavar="ISO-TIME", help="with --tick: the minute to evaluate, e.g. "
                                                      "2026-11-26T03:00:00Z (default: now; UTC without an offset)")
    run.add_argument("--execute", type=int, metavar="RUN", help=argparse.SUPPRESS)
    run.set_defaults(func=cmd_scheduler)
    lst = sub.add_parser("schedules", help="every schedule of .pipelines/*.yml with its next fire time (UTC)")
    lst.set_defaults(func=cmd_schedules)
