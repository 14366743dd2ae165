"""`mlops init NAME --data FILE.csv --target COLUMN`: a new model project from a CSV file, in one step."""
from __future__ import annotations

from pathlib import Path

TASKS = ("regression", "classification")


def cmd_init(args) -> int:
    """Create the project, then say what was written and what to run next (or remove it: --remove)."""
    from ml_service.config import find_root, load_settings
    from ml_service.errors import UsageError
    from ml_service.init.project import init_project

    root = find_root()
    if args.remove:
        from ml_service.init.remove import confirm_and_remove

        return 0 if confirm_and_remove(root, args.name, load_settings(), yes=args.yes) else 1
    if not args.data or not args.target:
        raise UsageError("mlops init NAME needs --data FILE.csv and --target COLUMN (or --remove)")
    plan = init_project(root, Path(args.data), args.target, args.task, args.name, args.model_name, args.dataset,
                        args.keep or (), args.drop or ())
    names, profile = plan.names, plan.profile
    features = profile.features
    categorical = sum(1 for c in features if c.categorical)
    with_nulls = sum(1 for c in features if c.nulls)
    print(f"created model project {names.project} in {root}")
    print(f"  data      {names.data} ({profile.rows} rows; {len(features)} features: {len(features) - categorical} "
          f"numeric, {categorical} categorical, {with_nulls} with missing values)")
    if not plan.dialect.standard:
        print(f"  read as   {plan.dialect.describe()}; {names.data} is the same table as a standard CSV file")
    for excluded in profile.excluded:
        print(f"  not a feature: {excluded.name!r}: {excluded.reason} (--keep {excluded.name!r} to use it)")
    for warning in profile.warnings:
        print(f"  warning: {warning}")
    print(f"  contract  {names.contract} (review it: ranges, categories, required columns)")
    print(f"  task      {profile.task} ({profile.task_reason}); metric {profile.metric}, higher is better")
    print(f"  code      {names.project}/ (training, evaluate, register, scoring, tests)")
    print(f"  pipelines {', '.join(names.pipelines)}")
    print(f"  mlops.yml models: + {names.project} (registered model {names.model_name})")
    print(f"next: make test && make run MODEL={names.project} APPROVE=1")
    return 0


def add_commands(groups) -> None:
    """Register `mlops init`."""
    init = groups.add_parser(
        "init", help="create a model project from a CSV file (code, data contract, pipelines, mlops.yml entry)",
        description="Create a model project NAME from a CSV file: a Python package with training, evaluation, "
                    "registration, scoring and tests; the data copied to data/ with a data contract profiled "
                    "from it; its build, retrain and release pipelines; and its entry in mlops.yml. "
                    "Nothing is written when any check fails.")
    init.add_argument("name", help="project name: a new folder and Python package (a Python identifier: ASCII "
                                   "letters, digits, _)")
    init.add_argument("--data", metavar="FILE.csv", help="the training data, a CSV file with a header")
    init.add_argument("--target", metavar="COLUMN", help="the column to predict")
    init.add_argument("--task", choices=TASKS,
                      help="default: guessed from the target (text, booleans or at most 20 distinct whole "
                           "numbers: classification; other numbers: regression)")
    init.add_argument("--model-name", metavar="NAME", help="registered model name (default: <name>_model)")
    init.add_argument("--dataset", metavar="NAME",
                      help="data set name: data/<dataset>.csv, its contract, the workspace data set "
                           "(default: <name>)")
    init.add_argument("--keep", action="append", metavar="COLUMN",
                      help="use this column as a feature although it looks like a row index or an identifier "
                           "(repeatable)")
    init.add_argument("--drop", action="append", metavar="COLUMN",
                      help="leave this column out of the features; it stays in the data file (repeatable)")
    init.add_argument("--remove", action="store_true",
                      help="undo `mlops init NAME`: delete its folder, data, contract, pipelines and mlops.yml entry "
                           "(refused while a version of its model is live)")
    init.add_argument("--yes", action="store_true", help="with --remove: do not ask first")
    init.set_defaults(func=cmd_init)
