"""A batch job on Apache Spark (`mlops batch score --engine spark`): the local engine's promises, Spark's reach.

1. The model version is found as the local engine finds it (the embedded registry's tables, else MLflow in a
   process of its own), while the Spark driver starts.
2. The input is listed through Spark's (Hadoop's) file system, so anything Spark can read works: a local
   folder, HDFS, object storage through Spark's connectors (s3a://, gs://, abfss://). Its identity is the
   listing (names, sizes, modification times): a resumed job must see the same files.
3. The rows of every input split are counted first (a local CSV by this process, with Spark's own cut; else a
   Spark job counting a CSV's lines as text); a split is a byte range of a file that Spark cuts by size alone
   (`--split-mb`, default 4, the same on every attempt whatever the cluster's cores).
   Sorted by file name then offset, the splits are numbered: split N becomes part-N.parquet, and its rows are
   numbered from the rows of the splits before it, as the local engine numbers rows across chunks.
4. The scoring pass is a mapInArrow over the project's score module (spark_worker.py): each split is checked,
   scored and written by its task and committed (`_commits/`); a task lost with its executor is run again by
   Spark and writes the same bytes. A killed job, rerun, skips the committed splits whose files match their
   sha256, so no row is lost or written twice.
5. The driver folds the commit records into `_manifest.json` (the local engine's format), concatenates the
   rejects into `_rejects.csv`, and records the job as an MLflow run (experiment `mlops-batch`, parameters
   `engine`, `master` and `spark_app_id` besides the local engine's). Progress: the committed rows, as a bar
   or a line every 10 s, and Spark's own UI.

The output is a folder the driver and every executor can write (a local folder here; a shared mount on a
cluster): each part is written to a temporary name and renamed.
"""
from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ml_service.batch import BatchError, manifest, model, spark_worker
from ml_service.batch.job import JobResult, _Run, _totals, _verdict, _write_rejects
from ml_service.batch.progress import Progress
from ml_service.batch.source import FORMATS

IDENTITY = ("model_name", "model_version", "input_digest", "engine", "split_bytes")
# The default split: small enough that the last splits leave no executor idle for long (at 16 MB, 1 M rows of
# the sample's CSV were 3.1 splits for 2 executors: one did twice the other's work), large enough that a
# split's fixed costs (a task, a part, a commit) stay small beside its rows.
DEFAULT_SPLIT_MB = 4
POLL_SECONDS = 2.0


@dataclass(frozen=True)
class SparkSpec:
    """What to score, with what, where to, and on which Spark."""

    model: str
    input: str
    output: Path
    master: str | None = None
    split_mb: int | None = None  # None: the resumed job's split, else DEFAULT_SPLIT_MB (see resolve_split)
    max_reject_fraction: float = 0.01
    conf: tuple = ()          # ("spark.KEY=VALUE", ...)
    workers: int = 0          # recorded as the local engine records it: the executors' cores
    chunk_rows: int = 0       # not used by Spark (splits are cut by size): recorded as 0

    @property
    def split_bytes(self) -> int:
        """The largest input split, in bytes."""
        return self.split_mb << 20


@dataclass(frozen=True)
class InputFile:
    """One file of the input, as Spark's file system lists it."""

    uri: str
    name: str
    size: int
    modified: int


def _is_remote(path: str) -> bool:
    return "://" in path


def list_input(spark, path: str) -> tuple[list[InputFile], str]:
    """The input's files in name order (a file, or a folder's .csv/.parquet files not starting with . or _)
    and their format, through Spark's file system; a BatchError as the local engine words it."""
    jvm, conf = spark.sparkContext._jvm, spark.sparkContext._jsc.hadoopConfiguration()
    location = jvm.org.apache.hadoop.fs.Path(path if _is_remote(path) else str(Path(path).resolve()))
    fs = location.getFileSystem(conf)
    if not fs.exists(location):
        raise BatchError(f"input not found: {path}")
    status = fs.getFileStatus(location)
    statuses = [status] if status.isFile() else list(fs.listStatus(location))
    files = []
    for entry in statuses:
        name = entry.getPath().getName()
        if not entry.isFile() or (status.isDirectory() and name.startswith((".", "_"))):
            continue
        if Path(name).suffix.lower() in FORMATS:
            files.append(InputFile(entry.getPath().toString(), name, int(entry.getLen()),
                                   int(entry.getModificationTime())))
    if status.isFile() and not files:
        raise BatchError(f"{path}: not a CSV or Parquet file (.csv, .parquet)")
    if not files:
        raise BatchError(f"{path}: no .csv or .parquet files in this folder")
    formats = {FORMATS[Path(f.name).suffix.lower()] for f in files}
    if len(formats) > 1:
        raise BatchError(f"{path}: mixes CSV and Parquet parts; use one format")
    return sorted(files, key=lambda f: f.name), formats.pop()


def listing_digest(files: list[InputFile]) -> str:
    """The input's identity: sha256 of its files' names, sizes and modification times."""
    import hashlib

    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.name}\0{f.size}\0{f.modified}\n".encode())
    return "listing:" + h.hexdigest()


def read_input(spark, files: list[InputFile], kind: str):
    """The input as a DataFrame (CSV as text, with its header; Parquet typed) plus each row's split."""
    from pyspark.sql import functions as F

    uris = [f.uri for f in files]
    if kind == "csv":
        frame = spark.read.csv(uris, header=True, enforceSchema=False, mode="PERMISSIVE")
    else:
        frame = spark.read.parquet(*uris)
    return frame.withColumn(spark_worker.FILE_COLUMN, F.col("_metadata.file_path")) \
        .withColumn(spark_worker.BLOCK_COLUMN, F.col("_metadata.file_block_start"))


OPEN_COST = 4 << 20  # spark.sql.files.openCostInBytes, as job_conf pins it


def _local_path(uri: str) -> Path | None:
    from urllib.parse import unquote, urlparse

    parsed = urlparse(uri)
    return Path(unquote(parsed.path)) if parsed.scheme == "file" else None


def csv_split_counts(path: Path, size: int, max_split: int) -> dict[int, int]:
    """{split start: rows} of a local CSV file as Spark's line reader cuts it: a line belongs to the split whose
    range (start, end] holds its first byte (the first line: split 0); blank lines and the header are not rows."""
    import numpy as np

    counts = np.zeros(max(1, -(-size // max_split)), dtype=np.int64)
    line_start, carried, header, offset = 0, False, True, 0

    def count(starts, flags) -> None:
        nonlocal header
        starts = starts[flags]
        if header and len(starts):
            starts, header = starts[1:], False
        splits = np.where(starts == 0, 0, (starts - 1) // max_split)
        counts[:] += np.bincount(splits, minlength=len(counts))[:len(counts)]

    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(4 << 20), b""):
            data = np.frombuffer(block, np.uint8)
            prefix = np.concatenate([[0], np.cumsum(data > 32, dtype=np.int64)])
            ends = np.flatnonzero(data == 10)
            starts = np.concatenate([[line_start], ends[:-1] + 1 + offset]) if len(ends) else np.array([], np.int64)
            if len(ends):
                begin = np.maximum(starts - offset, 0)
                flags = (prefix[ends] - prefix[begin]) > 0
                flags[0] |= carried
                count(starts, flags)
                line_start, carried = int(ends[-1]) + 1 + offset, False
            carried |= bool(prefix[-1] - prefix[max(line_start - offset, 0)] > 0)
            offset += len(block)
    if line_start < size and carried:  # a last line without a line break
        count(np.array([line_start]), np.array([True]))
    return {i * max_split: int(n) for i, n in enumerate(counts) if n}


def _counted_locally(files: list[InputFile], split_bytes: int) -> list | None:
    """(file, split start, rows) of local CSV files, counted here (no Spark job), splits cut as Spark cuts them
    (FilePartition.maxSplitBytes with minPartitionNum 1); None when a file is not local. Each task checks its
    split's rows against this count, so a difference from Spark's cut stops the job instead of misnumbering."""
    paths = [_local_path(f.uri) for f in files]
    if any(p is None or not p.is_file() for p in paths):
        return None
    total = sum(f.size + OPEN_COST for f in files)
    max_split = min(split_bytes, max(OPEN_COST, total))
    return [(f.uri, block, rows) for f, path in zip(files, paths)
            for block, rows in csv_split_counts(path, f.size, max_split).items()]


def _counted(spark, frame, files: list[InputFile], kind: str, split_bytes: int = 0) -> list:
    """(file path, split start, rows) of every split: a CSV's lines counted as text (no parsing: the same splits,
    less the header line and blank lines, which the CSV reader skips), a Parquet's rows from its row groups."""
    from pyspark.sql import functions as F

    if kind == "csv":
        local = _counted_locally(files, split_bytes)
        if local is not None:
            return local
        lines = spark.read.text([f.uri for f in files]).where(F.col("value").rlike("[^\\x00-\\x20]"))
        lines = lines.select(F.col("_metadata.file_path").alias("f"), F.col("_metadata.file_block_start").alias("b"))
        counted = lines.groupBy("f", "b").count().collect()
        return [(r["f"], r["b"], r["count"] - (1 if r["b"] == 0 else 0)) for r in counted]
    counted = frame.select(spark_worker.FILE_COLUMN, spark_worker.BLOCK_COLUMN) \
        .groupBy(spark_worker.FILE_COLUMN, spark_worker.BLOCK_COLUMN).count().collect()
    return [(r[0], r[1], r["count"]) for r in counted]


def plan_splits(spark, frame, files: list[InputFile], kind: str, split_bytes: int) -> dict[str, tuple[int, int, int]]:
    """{split key: (index, first row, rows)} from one counting pass, splits in input order."""
    order = {f.name: i for i, f in enumerate(files)}
    keyed = []
    for path, block, rows in _counted(spark, frame, files, kind, split_bytes):
        if rows <= 0:
            continue
        key = spark_worker.split_key(path, block)
        keyed.append((order[key.rsplit("@", 1)[0]], int(block), key, int(rows)))
    splits, first = {}, 0
    for index, (_, _, key, rows) in enumerate(sorted(keyed)):
        splits[key] = (index, first, rows)
        first += rows
    return splits


def _check_same_job(previous: dict, identity: dict, output: Path) -> None:
    for key in IDENTITY:
        if str(previous.get(key)) != str(identity[key]):
            raise BatchError(f"{output} holds a job with another {key.replace('_', ' ')} "
                             f"({previous.get(key)!r}, now {identity[key]!r}); resume it with the same model version, "
                             "input, engine and --split-mb, or use another --output")


def _committed(output: Path) -> dict:
    """The records of the splits committed in output, by index (as text, the manifest's keys)."""
    import json

    records = {}
    for path in (output / spark_worker.COMMITS).glob("part-*.json"):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        records[str(record["index"])] = record
    return records


def _clean(output: Path, done: dict) -> None:
    """Remove temporary files, parts and commits that no verified split names (a killed attempt's leftovers)."""
    keep = {c["file"] for c in done.values()} | {c.get("rejects_file") for c in done.values()} | \
        {spark_worker.commit_name(int(k)) for k in done}
    for folder in (output, output / "_rejects", output / spark_worker.COMMITS):
        for path in folder.glob(".*.tmp"):
            path.unlink(missing_ok=True)
        for path in folder.glob("part-*"):
            if path.relative_to(output).as_posix() not in keep:
                path.unlink()


class _Committed(threading.Thread):
    """Counts the committed rows every POLL_SECONDS for the progress bar (the driver waits on Spark)."""

    def __init__(self, output: Path, progress: Progress, already: set):
        super().__init__(daemon=True, name="mlops-spark-progress")
        self.output, self.progress, self.seen = output, progress, set(already)
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(POLL_SECONDS):
            for key, record in _committed(self.output).items():
                if key not in self.seen:
                    self.seen.add(key)
                    self.progress.update(record["rows"])


def _ship_model(spark, directory: Path, workdir: Path) -> str:
    """The model's folder as an archive Spark unpacks on every executor (as spark_udf ships a model); its name
    there (SparkFiles.get)."""
    archive = shutil.make_archive(str(workdir / "mlops_model"), "zip", root_dir=directory)
    spark.sparkContext.addArchive(archive)
    return Path(archive).name


def _ship_code(spark, settings, workdir: Path) -> None:
    """The platform and the model projects as one zip on the executors' Python path (a cluster's workers
    have the libraries, not this checkout). Python's zip importer knows no namespace packages, so a folder
    without an `__init__.py` (a model's scoring/) gets an empty one in the zip."""
    import zipfile

    target = workdir / "mlops_code.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        packages = [settings.root / "ml_service", *(m.folder for m in settings.models)]
        for package in packages:
            folders = set()
            for path in sorted(package.rglob("*.py")):
                if "__pycache__" not in path.parts and "tests" not in path.relative_to(package).parts:
                    archive.write(path, path.relative_to(settings.root).as_posix())
                    folders.add(path.parent)
            for folder in sorted(folders):
                if not (folder / "__init__.py").is_file():
                    archive.writestr((folder / "__init__.py").relative_to(settings.root).as_posix(), "")
    spark.sparkContext.addPyFile(str(target))


def resolve_split(spec: SparkSpec, previous: dict | None) -> SparkSpec:
    """spec with its split size: as given, else the split of the Spark job found in the output (so that a job
    started with another default resumes as it began), else DEFAULT_SPLIT_MB."""
    import dataclasses

    if spec.split_mb is not None:
        return spec
    split_bytes = (previous or {}).get("split_bytes")
    if (previous or {}).get("engine") == "spark" and type(split_bytes) is int and split_bytes > 0 \
            and split_bytes % (1 << 20) == 0:
        return dataclasses.replace(spec, split_mb=split_bytes >> 20)
    return dataclasses.replace(spec, split_mb=DEFAULT_SPLIT_MB)


def run_spark_job(settings, spec: SparkSpec, say=print) -> JobResult:
    """Run (or resume) a batch job on Spark; the counts. BatchError when it cannot run or rejects too many rows."""
    import tempfile

    from ml_service.batch import local_store, spark_session
    from ml_service.batch.recording import open_recorder

    if (spec.split_mb is not None and spec.split_mb < 1) or not 0.0 <= spec.max_reject_fraction <= 1.0:
        raise BatchError("--split-mb >= 1 and 0 <= --max-reject-fraction <= 1")
    ref = model.check_ref(spec.model)
    extra = spark_session.parse_conf(list(spec.conf))  # a malformed --conf stops here, before anything is written
    settings = settings.for_registered(ref.name)
    output = spec.output.resolve()
    for folder in (output, output / "_rejects", output / spark_worker.COMMITS):
        folder.mkdir(parents=True, exist_ok=True)
    previous = manifest.load(output)
    spec = resolve_split(spec, previous)
    conf = {**spark_session.job_conf(spec.split_bytes), **extra}
    found = local_store.find(settings, spec.model)
    with open_recorder(settings, found) as recorder, tempfile.TemporaryDirectory(prefix="mlops-spark-") as workdir:
        if found is None:  # MLflow resolves the version while the Spark driver starts
            recorder.send("resolve", spec.model)
        spark = spark_session.start(spec.master, f"mlops batch {ref.name}", conf)
        try:
            return _run(settings, spec, output, previous, found, recorder, spark, Path(workdir), say)
        finally:
            spark.stop()


def _run(settings, spec, output, previous, found, recorder, spark, workdir, say) -> JobResult:
    from ml_service.batch import spark_session

    name, version, directory = found or (*recorder.receive(), None)
    files, kind = list_input(spark, spec.input)
    identity = {"model_name": name, "model_version": version, "input_digest": listing_digest(files),
                "engine": "spark", "split_bytes": spec.split_bytes}
    if previous:
        _check_same_job(previous, identity, output)
    state = previous or {**identity, "input": spec.input, "chunks": {}, "status": "running", "chunk_rows": 0}
    done = manifest.verified(output, {**state["chunks"], **_committed(output)})
    if state["status"] == "finished" and len(done) == len(state["chunks"]):
        totals = _totals(done)
        say(f"nothing to do: the job in {output} finished already ({totals['scored']:,} rows scored, "
            f"{totals['rejected']:,} rejected, {name} v{version})")
        return _verdict(spec, JobResult(**totals, seconds=0.0, run_id=state.get("run_id", ""), nothing_to_do=True,
                                        model_name=name, model_version=version), say)
    if directory is None:
        recorder.send("download", str(output / "_model"))
        directory = Path(recorder.receive())
    _clean(output, done)
    batch_model = model.describe(settings, name, version, Path(directory))
    planning = time.monotonic()
    frame = read_input(spark, files, kind)
    data_columns = [c for c in frame.columns if c not in (spark_worker.FILE_COLUMN, spark_worker.BLOCK_COLUMN)]
    columns = model.columns_to_read(batch_model.schema, data_columns, spec.input)
    splits = plan_splits(spark, frame, files, kind, spec.split_bytes)
    planning = time.monotonic() - planning
    for key, record in done.items():
        if splits.get(record.get("split"), (None, None))[:2] != (int(key), record["first_row"]):
            raise BatchError(f"split {key} of the input does not match the job in {output}; use another --output")
    state.update(chunks=done, status="running", splits=len(splits))
    manifest.save(output, state)
    context = spark.sparkContext
    shipped = _ship_model(spark, Path(directory), workdir)
    _ship_code(spark, settings, workdir)
    job = {"model_dir": str(directory), "shipped": shipped, "score_module": batch_model.score_module,
           "schema": batch_model.schema, "output": str(output), "root": str(settings.root), "csv": kind == "csv",
           "model": {"name": name, "version": version}, "splits": splits, "done": {int(k) for k in done},
           "numeric": model.numeric_columns(batch_model.schema, {"input": columns})}
    cores = context.defaultParallelism
    spec_recorded = _Recorded(spec, cores, spark_session.master_url(spec.master), context.applicationId)
    say(f"batch {name} v{version} on Spark {spark_session.master_url(spec.master)} ({cores} cores, app "
        f"{context.applicationId}): {spec.input} -> {output} ({len(splits)} splits of up to {spec.split_mb} MB"
        + (f", resuming after {len(done)} committed split(s))" if done else ")"))
    rows = sum(s[2] for s in splits.values())
    progress = Progress(rows, already=_totals(done)["rows"])
    run = _Run(recorder, spec_recorded, state)
    run.ask()
    watcher = _Committed(output, progress, set(done))
    started = time.monotonic()
    watcher.start()
    try:
        scored = [] if len(done) == len(splits) else \
            frame.select(*columns, spark_worker.FILE_COLUMN, spark_worker.BLOCK_COLUMN) \
            .mapInArrow(spark_worker.score_partition(job), spark_worker.RESULT_SCHEMA).collect()
    except BaseException as exc:
        watcher.stop.set()
        progress.done()
        try:
            run.finish(time.monotonic() - started, 0, True)
        except BatchError:
            pass
        if isinstance(exc, Exception) and not isinstance(exc, BatchError):
            raise BatchError(f"the Spark job failed: {_spark_message(exc)}; rerun the command to resume") from None
        raise
    watcher.stop.set()
    progress.done()
    seconds = time.monotonic() - started
    return _finish(spec, output, state, scored, run, batch_model, seconds, planning, say)


class _Recorded:
    """The spec as the job's MLflow run records it (record.params): the local engine's fields and Spark's."""

    def __init__(self, spec: SparkSpec, cores: int, master: str, app_id: str):
        self.model, self.input, self.output = spec.model, spec.input, spec.output
        self.workers, self.chunk_rows, self.max_reject_fraction = cores, 0, spec.max_reject_fraction
        self.extra_params = {"engine": "spark", "master": master, "spark_app_id": app_id,
                             "split_mb": spec.split_mb}


def _spark_message(exc: Exception) -> str:
    """The first line of a Spark failure that says what went wrong (a Python error in a task, if any)."""
    text = str(exc)
    for marker in ("BatchError: ", "Error: "):
        for line in text.splitlines():
            if marker in line and "Traceback" not in line:
                return line.strip()[:500]
    return (text.strip().splitlines() or [type(exc).__name__])[0][:500]


def _finish(spec, output, state, scored, run, batch_model, seconds, planning, say) -> JobResult:
    import json

    committed = _committed(output)
    for row in scored:
        committed[str(row["index"])] = json.loads(row["record"])
    done = manifest.verified(output, committed)
    if len(done) != state["splits"]:
        raise BatchError(f"{state['splits'] - len(done)} split(s) of {state['splits']} were not committed; "
                         "rerun the command to resume")
    state.update(chunks=done, status="finished")
    _write_rejects(output, done)
    manifest.save(output, state)
    shutil.rmtree(output / "_model", ignore_errors=True)
    totals = _totals(done)
    scored_now = sum(int(json.loads(row["record"])["scored"]) for row in scored)
    failed = totals["rejected"] > spec.max_reject_fraction * totals["rows"]
    run.finish(seconds, scored_now, failed)
    result = JobResult(**totals, seconds=seconds, run_id=state["run_id"], model_name=batch_model.name,
                       model_version=batch_model.version)
    say(f"scored {totals['scored']:,} of {totals['rows']:,} rows, rejected {totals['rejected']:,} in {seconds:.2f}s "
        f"({scored_now / max(seconds, 1e-9):,.0f} rows/s now; counting the splits took {planning:.2f}s before); "
        f"MLflow run {state['run_id']}")
    return _verdict(spec, result, say)
