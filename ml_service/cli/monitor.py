"""`mlops monitor drift`: has what an environment serves drifted from what its model was trained on?"""
from __future__ import annotations

from pathlib import Path

from ml_service.cli.options import MODEL_NAME

EXIT_DRIFT = 4  # distinct from 1 (failed) and 2 (usage): a schedule or a script can act on it


def cmd_drift(args) -> int:
    """Measure drift; exit 4 above the thresholds (and queue and run the retrain when configured)."""
    from ml_service.cli.support import command_settings
    from ml_service.workspace.refs import parse_model_ref
    from ml_service.monitor import check, config

    settings = command_settings(args)
    model = parse_model_ref(args.model).name if args.model else settings.model_name
    since = None
    if args.since:
        from ml_service.ci.model.schedules import parse_time

        since = parse_time(args.since).timestamp()
    outcome = check.measure(settings, model, args.env, args.window,
                            Path(args.collected) if args.collected else None, since=since)
    result = outcome.result
    for column in result.features + ([result.prediction] if result.prediction else []):
        print(f"  {'DRIFT' if column.drifted else 'ok':<5} {column.name:<24} PSI {column.psi:7.3f}  "
              f"{column.test} p {column.p_value:.3g}")
    print(f"{model} v{outcome.version} in {outcome.environment}: {result.current_rows} collected rows vs "
          f"{result.reference_rows} training rows ({outcome.facts['window']})")
    print(f"report: {outcome.report}\nMLflow run: {outcome.run_id} (experiment {check.EXPERIMENT})")
    if not result.drifted:
        print("no drift")
        return 0
    drifted = result.drifted_features + (["prediction"] if result.prediction and result.prediction.drifted else [])
    print(f"DRIFT: {', '.join(drifted)}")
    retrain = args.retrain if args.retrain is not None else config.load(settings.for_registered(model)).retrain
    if retrain:
        from ml_service.ci.runner.progress import Progress, summary as _summary
        from ml_service.ci.server.service import execute, open_store

        store = open_store(settings)
        for run_id in check.trigger_retrain(settings, model):
            print(f"triggered run {run_id}: {store.get_run(run_id).pipeline} (ResourceTrigger: drift)")
            _summary(store, execute(settings, store, run_id, Progress()))
    return EXIT_DRIFT


def add_commands(groups) -> None:
    """Register `mlops monitor`."""
    monitor = groups.add_parser("monitor", help="drift of served inputs and predictions")
    sub = monitor.add_subparsers(dest="action", metavar="ACTION", required=True)
    drift = sub.add_parser("drift", help="compare the inputs an environment collected with the live version's "
                                         "training data (exit 4 on drift)")
    MODEL_NAME.add(drift, help="registered model (NAME; default: the selected project's)")
    drift.add_argument("--env", required=True, choices=("qa", "production"), help="the environment")
    drift.add_argument("--window", help="how far back: 90m, 24h, 7d or all (default: monitor.window in mlops.yml)")
    drift.add_argument("--since", metavar="ISO-TIME", help="start of the window instead (e.g. the last deployment)")
    drift.add_argument("--collected", metavar="DIR", help="folder of collected JSONL (default: monitor.collect_dir)")
    drift.add_argument("--retrain", dest="retrain", action="store_true", default=None,
                       help="on drift, queue and run the retrain pipeline (default: monitor.retrain)")
    drift.add_argument("--no-retrain", dest="retrain", action="store_false", help="never trigger the retrain")
    drift.set_defaults(func=cmd_drift)
