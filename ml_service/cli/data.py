"""`mlops data ...`: data contracts and the data set registry (versions, what was trained on each)."""
from __future__ import annotations

from pathlib import Path

from ml_service.cli.support import EXIT_FAILED, CommandError, command_settings


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
    result = validate_file(path, suite, any_dialect=bool(args.path))  # a file of the user's: as `data add` reads it
    report = write_report(result, settings.reports_dir)
    print(result.summary())
    print(f"report: {report}")
    return 0 if result.success else EXIT_FAILED


def _from_collected(settings, name: str, args, out: Path) -> str:
    """Build the CSV of a new version: the newest version (or mlops.yml's file) plus labelled collected rows."""
    from ml_service.data import collected, registry

    if not args.labels:
        raise CommandError("--from-collected needs --labels FILE (CSV: request_id, optional row, the target)")
    project = registry.projects_using(settings, name)[0] if registry.projects_using(settings, name) else None
    if project is None or not project.target:
        raise CommandError(f"no model project with a target uses data set '{name}' (mlops.yml models:)")
    base = registry.data_path(settings, project)
    if base is None:
        raise CommandError(f"data set '{name}' has no version and model project '{project.project}' no data file")
    import csv

    with open(base, newline="") as handle:
        header = next(csv.reader(handle), [])
    features = [c for c in header if c != project.target]
    rows = collected.read(Path(args.from_collected))
    labels = collected.read_labels(Path(args.labels), project.target)
    counts = collected.join_labels(rows, labels, features, project.target, base, out)
    if not counts["added"]:
        raise CommandError(f"no collected row of {args.from_collected} has a label in {args.labels} "
                           f"({len(rows.rows)} collected rows, {len(labels)} labels): nothing to add")
    return (f"{counts['base_rows']} rows of {base.name} + {counts['added']} labelled collected rows "
            f"({counts['unlabelled']} collected rows without a label, {counts['labels_without_input']} labels "
            "without a collected row)")


def cmd_data_add(args) -> int:
    """Validate a file against the data set's contract, register it as a new version, run what it triggers."""
    import tempfile

    from ml_service.data import registry, trigger

    settings = command_settings(args)
    if bool(args.file) == bool(args.from_collected):
        raise CommandError("give a FILE, or --from-collected DIR --labels FILE (not both)")
    with tempfile.TemporaryDirectory() as tmp:
        if args.from_collected:
            path = Path(tmp) / f"{args.name}.csv"
            print(_from_collected(settings, args.name, args, path))
            origin = f"collected {Path(args.from_collected).resolve()} + labels {Path(args.labels).resolve()}"
        else:
            path, origin = Path(args.file), ""
        try:
            version = registry.add(settings, args.name, path, origin)
        except registry.DataRejected as exc:
            print(f"refused: {exc}")
            return EXIT_FAILED
    if not version.new:
        print(f"unchanged: this content is already data set {version.name} v{version.version} "
              f"(sha256 {version.sha256[:12]}); nothing stored, nothing triggered")
        return 0
    print(f"data set {version.name} v{version.version}: {version.rows} rows, sha256 {version.sha256[:12]} "
          f"(MLflow run {version.run_id})")
    runs = trigger.queue_triggered(settings, version)
    if not runs:
        print("no pipeline declares a webhook resource on connection mlops-data for it: nothing triggered")
        return 0
    from ml_service.ci.server.service import open_store

    store = open_store(settings)
    for run_id in runs:
        print(f"triggered run {run_id}: {store.get_run(run_id).pipeline} (ResourceTrigger)")
    if args.no_triggers:
        print("queued only (--no-triggers): run them with `mlops ci rerun` or let the scheduler pick them up")
        return 0
    from ml_service.ci.runner.progress import Progress, summary as _summary
    from ml_service.ci.server.service import execute

    code = 0
    for run_id in runs:
        code = max(code, _summary(store, execute(settings, store, run_id, Progress())))
    return code


def cmd_data_list(args) -> int:
    """Every data set of mlops.yml with its newest version."""
    from ml_service.data import registry

    settings = command_settings(args)
    print(f"{'DATA SET':<24} {'VERSIONS':>8} {'NEWEST':>6} {'ROWS':>8}  {'SHA256':<14} USED BY")
    for name in registry.known_names(settings):
        found = registry.versions(settings, name)
        users = ", ".join(m.project for m in registry.projects_using(settings, name))
        newest = found[-1] if found else None
        print(f"{name:<24} {len(found):>8} {('v' + str(newest.version)) if newest else '-':>6} "
              f"{newest.rows if newest else '':>8}  {newest.sha256[:12] if newest else '(mlops.yml file)':<14} {users}")
    return 0


def cmd_data_show(args) -> int:
    """A data set's versions and the model versions trained on each."""
    import time

    from ml_service.data import registry

    settings = command_settings(args)
    registry.project_of(settings, args.name)
    found = registry.versions(settings, args.name)
    if not found:
        print(f"data set {args.name}: no registered version yet (mlops data add {args.name} FILE)")
        return 0
    print(f"data set {args.name}: {len(found)} version(s)")
    for item in reversed(found):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(item.created / 1000))
        models = ", ".join(registry.trained_on(settings, item)) or "no model version yet"
        print(f"  v{item.version}  {when}  {item.rows} rows  sha256 {item.sha256[:12]}  run {item.run_id}")
        print(f"       trained on it: {models}")
        if item.origin:
            print(f"       from: {item.origin}")
    return 0


def cmd_data_path(args) -> int:
    """The local file of a data set version ($data of retraining): downloaded from the workspace if needed."""
    from ml_service.data import registry

    settings = command_settings(args)
    if args.name:
        print(registry.materialize(settings, args.name, args.version))
        return 0
    if args.version is not None:
        raise CommandError("--version needs a data set NAME")
    path = registry.data_path(settings, settings.model)
    if path is None:
        raise CommandError(f"model project '{settings.project}' has no data set version and no data file")
    print(path)
    return 0


def add_commands(groups) -> None:
    """Register `mlops data`."""
    data = groups.add_parser("data", help="data contracts and data set versions")
    d_sub = data.add_subparsers(dest="action", metavar="ACTION", required=True)
    validate = d_sub.add_parser("validate", help="validate a CSV file against the model project's data contract")
    validate.add_argument("path", nargs="?", help="CSV file (default: the project's data in mlops.yml)")
    validate.add_argument("--suite", help="expectation suite JSON (default: the project's contract in mlops.yml)")
    validate.set_defaults(func=cmd_data_validate)
    add = d_sub.add_parser("add", help="validate a file against the data set's contract and register it as a new "
                                       "version (triggers the pipelines that use it)")
    add.add_argument("name", help="the data set (a model project's dataset: in mlops.yml)")
    add.add_argument("file", nargs="?", help="CSV file")
    add.add_argument("--from-collected", metavar="DIR",
                     help="instead of FILE: the newest version plus the labelled inputs the scoring service "
                          "collected in DIR")
    add.add_argument("--labels", metavar="FILE", help="with --from-collected: CSV of request_id, optional row, "
                                                      "and the target column")
    add.add_argument("--no-triggers", action="store_true", help="queue the triggered pipelines, do not run them")
    add.set_defaults(func=cmd_data_add)
    lst = d_sub.add_parser("list", help="data sets with their newest version")
    lst.set_defaults(func=cmd_data_list)
    show = d_sub.add_parser("show", help="a data set's versions and the model versions trained on each")
    show.add_argument("name")
    show.set_defaults(func=cmd_data_show)
    path = d_sub.add_parser("path", help="the local file of a data set version (default: the selected project's "
                                         "$data: its newest version, else mlops.yml's file)")
    path.add_argument("name", nargs="?", help="data set (default: the selected model project's)")
    path.add_argument("--version", type=int, help="version number (default: the newest)")
    path.set_defaults(func=cmd_data_path)
