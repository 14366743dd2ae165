"""`mlops batch score`: score a CSV or Parquet file (or a folder of parts) with a registered model version."""
from __future__ import annotations

from pathlib import Path

from ml_service.cli.options import MODEL_VERSION
from ml_service.cli.support import CommandError, command_settings, registered_name


def cmd_batch_score(args) -> int:
    """Run or resume a batch scoring job; BatchError (exit 1) when it fails or rejects too many rows."""
    from ml_service.batch.job import JobSpec, run_job

    if args.workers < 0 or args.chunk_rows < 1 or not 0.0 <= args.max_reject_fraction <= 1.0:
        raise CommandError("--workers >= 0, --chunk-rows >= 1 and 0 <= --max-reject-fraction <= 1")
    if args.engine == "spark":
        from ml_service.batch.spark_job import SparkSpec, run_spark_job

        if args.split_mb is not None and args.split_mb < 1:
            raise CommandError("--split-mb must be at least 1")
        if args.workers or args.chunk_rows != 100_000:
            raise CommandError("--workers and --chunk-rows apply to the local engine; Spark's unit is a split of "
                               "--split-mb MB, its workers the cluster's executors")
        spec = SparkSpec(model=args.model, input=args.input, output=Path(args.output), master=args.master,
                         split_mb=args.split_mb, max_reject_fraction=args.max_reject_fraction, conf=tuple(args.conf))
        run_spark_job(command_settings(args, registered=registered_name(args.model)), spec)
        return 0
    if args.master or args.conf:
        raise CommandError("--master and --conf apply to --engine spark")
    spec = JobSpec(model=args.model, input=Path(args.input), output=Path(args.output), workers=args.workers,
                   chunk_rows=args.chunk_rows, max_reject_fraction=args.max_reject_fraction)
    run_job(command_settings(args, registered=registered_name(args.model)), spec)
    return 0


def add_commands(groups) -> None:
    """Register the `batch` command group."""
    batch = groups.add_parser("batch", help="score files in batch with a registered model version")
    commands = batch.add_subparsers(dest="command", metavar="COMMAND", required=True)
    score = commands.add_parser(
        "score", help="score a CSV/Parquet file or folder into Parquet parts (parallel, resumable)",
        description="Score every row of the input with a registered model version, in parallel worker processes. "
                    "Rerun the same command to resume a job that was interrupted; a finished job is not redone.")
    MODEL_VERSION.add(score, required=True, metavar="NAME@ALIAS|NAME:VERSION",
                      help="the registered model version, e.g. my_model@champion or my_model:3")
    score.add_argument("--input", required=True, metavar="FILE|DIR",
                       help="a .csv or .parquet file, or a folder of such parts (read in name order)")
    score.add_argument("--output", required=True, metavar="DIR",
                       help="folder for part-NNNNN.parquet, _manifest.json and _rejects.csv")
    score.add_argument("--workers", type=int, default=0, metavar="N", help="worker processes (default: one per core)")
    score.add_argument("--chunk-rows", type=int, default=100_000, metavar="N",
                       help="rows per chunk, the unit of work and of resuming (default: 100000)")
    score.add_argument("--max-reject-fraction", type=float, default=0.01, metavar="F",
                       help="fail (exit 1) when more than this share of rows is rejected (default: 0.01)")
    score.add_argument("--engine", choices=("local", "spark"), default="local",
                       help="local: worker processes on this machine (default); spark: an Apache Spark job")
    score.add_argument("--master", metavar="URL", help="Spark master (local[*], spark://HOST:7077, yarn, k8s://...; "
                       "default: spark.master of spark-defaults.conf, else local[*])")
    score.add_argument("--split-mb", type=int, default=None, metavar="MB",
                       help="Spark: the largest input split, the unit of work and of resuming (default: 4, or "
                            "the split of the job being resumed)")
    score.add_argument("--conf", action="append", default=[], metavar="spark.KEY=VALUE",
                       help="Spark: a setting for the job (repeatable), e.g. spark.executor.memory=2g")
    score.set_defaults(func=cmd_batch_score)
