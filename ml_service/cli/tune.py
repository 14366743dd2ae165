"""`mlops tune`: search the selected project's parameters.yml search space with an Optuna study."""
from __future__ import annotations

from ml_service.cli.support import command_settings


def cmd_tune(args) -> int:
    """Run (or resume) the project's study; the best parameters are what its pipeline's next train uses."""
    from ml_service.tune.run import run_study

    run_study(command_settings(args), trials=args.trials, workers=args.workers, timeout=args.timeout,
              name=args.study)
    return 0


def add_commands(groups) -> None:
    """Register `mlops tune`."""
    tune = groups.add_parser(
        "tune", help="tune the project's hyperparameters (Optuna study in the workspace's database)",
        description="Search the search space of the project's parameters.yml (tuning.search_space) with an Optuna "
                    "study stored in the workspace's database; every trial is a nested MLflow run. Workers on this "
                    "or other machines (same workspace) join the same study; rerunning resumes it.")
    tune.add_argument("--trials", type=int, metavar="N",
                      help="finished trials the study should have in all (default: tuning.trials, else 20)")
    tune.add_argument("--workers", type=int, default=1, metavar="N",
                      help="worker processes on this machine (default: 1)")
    tune.add_argument("--timeout", type=float, metavar="S", help="start no trial after S seconds")
    tune.add_argument("--study", metavar="NAME",
                      help="the study's name (default: PROJECT-SPACE-DATA digests: same space, same data, same study)")
    tune.set_defaults(func=cmd_tune)
