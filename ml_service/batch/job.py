"""A batch job. The job's process plans and collects: it reads the input's bytes once (digest, row count, the
byte range of every CSV chunk) while a child process starts MLflow and resolves and downloads the model
(recorder.py); it loads the model once and forks the scoring workers from it, so they share it and never
import MLflow; each worker reads its own chunks, scores them and writes one Parquet part a chunk; the manifest
is updated after every chunk, with at most IN_FLIGHT_PER_WORKER chunks a worker in flight, so memory does not
grow with the input. A rerun continues where a killed job stopped and a finished job is not redone. Rejected
rows end in <output>/_rejects.csv.

Everything the job writes besides the parts starts with "_" or ".", so `pandas.read_parquet(output)`
(pyarrow datasets skip such names) reads exactly the predictions.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ml_service.batch import BatchError, manifest, model, source
from ml_service.batch.progress import Progress

IN_FLIGHT_PER_WORKER = 2


@dataclass(frozen=True)
class JobSpec:
    """What to score, with what, and where to."""

    model: str
    input: Path
    output: Path
    workers: int = 0              # 0: one per core
    chunk_rows: int = 100_000
    max_reject_fraction: float = 0.01


@dataclass(frozen=True)
class JobResult:
    """The outcome of a job (all of it, across resumes)."""

    rows: int
    scored: int
    rejected: int
    seconds: float
    run_id: str
    model_name: str
    model_version: str
    nothing_to_do: bool = False
    failed: bool = False


def _check(spec: JobSpec) -> None:
    if spec.workers < 0:
        raise BatchError("--workers must be 0 (one per core) or more")
    if spec.chunk_rows < 1:
        raise BatchError("--chunk-rows must be at least 1")
    if not 0.0 <= spec.max_reject_fraction <= 1.0:
        raise BatchError("--max-reject-fraction must be between 0 and 1")


def _totals(chunks: dict) -> dict:
    return {k: sum(c[k] for c in chunks.values()) for k in ("rows", "scored", "rejected")}


def _clean(output: Path, done: dict) -> None:
    """Remove temporary files and parts no finished chunk names (a killed job's leftovers)."""
    keep = {c["file"] for c in done.values()} | {c.get("rejects_file") for c in done.values()}
    for folder in (output, output / "_rejects"):
        for path in folder.glob("*.tmp"):
            path.unlink()
        for path in folder.glob("part-*.parquet"):
            if path.relative_to(output).as_posix() not in keep:
                path.unlink()


def _write_rejects(output: Path, chunks: dict) -> None:
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    target = output / "_rejects.csv"
    files = [output / c["rejects_file"] for _, c in sorted(chunks.items(), key=lambda kv: int(kv[0]))
             if c.get("rejects_file")]
    if not files:
        target.unlink(missing_ok=True)
        return
    temporary = output / f"._rejects.csv.{os.getpid()}.tmp"
    pcsv.write_csv(pa.concat_tables(pq.read_table(f) for f in files), temporary)
    os.replace(temporary, target)


def _pool(workers: int, batch_model: model.BatchModel, output: Path, root: Path):
    """The worker processes: forked from this process after it loaded the model (they share it), or, when
    this process runs other threads (forking would be unsafe), a forkserver whose workers load it each."""
    import gc
    import multiprocessing
    import threading
    from concurrent.futures import ProcessPoolExecutor

    from ml_service.batch import worker

    info = {"name": batch_model.name, "version": batch_model.version}
    args = (str(batch_model.directory), batch_model.score_module, batch_model.schema, str(output), info, str(root))
    if threading.active_count() == 1:
        worker.init(*args)
        gc.collect()
        gc.freeze()  # the model's objects stay untouched by the collector: shared, not copied, by the workers
        return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["ml_service.batch.worker"])
    return ProcessPoolExecutor(workers, mp_context=context, initializer=worker.init, initargs=args)


def _score(executor, workers: int, spec, tasks, state, progress, started) -> int:
    """Score every chunk not done yet; update the manifest after each; the rows scored now."""
    from concurrent.futures import FIRST_COMPLETED, wait
    from concurrent.futures.process import BrokenProcessPool

    from ml_service.batch import worker

    done, scored_now, pending = state["chunks"], 0, {}

    def collect(futures) -> None:
        nonlocal scored_now
        for future in futures:
            index, first = pending.pop(future)
            try:
                chunk = future.result()
            except BrokenProcessPool:
                raise
            except Exception as exc:
                raise BatchError(f"chunk {index} (rows from {first}) failed: {type(exc).__name__}: {exc}") from None
            done[str(index)] = chunk
            manifest.save(spec.output, state)
            scored_now += chunk["scored"]
            progress.update(chunk["rows"])

    try:
        for index, first, payload in tasks:
            if str(index) in done:
                if done[str(index)]["first_row"] != first:
                    raise BatchError(f"chunk {index} of the input does not match the manifest; use another --output")
                continue
            while len(pending) >= workers * IN_FLIGHT_PER_WORKER:
                collect(wait(pending, return_when=FIRST_COMPLETED).done)
            pending[executor.submit(worker.score_chunk, index, first, payload)] = (index, first)
            if started is not None:  # the workers are busy: now the run can be recorded
                started()
                started = None
        if started is not None:
            started()
        while pending:
            collect(wait(pending, return_when=FIRST_COMPLETED).done)
    except BrokenProcessPool:
        raise BatchError("a worker process died, or could not load the model (see above); rerun the command "
                         "to resume") from None
    return scored_now


def _warm_up() -> None:
    """Import what scoring needs while MLflow starts in the other process."""
    import pyarrow.csv  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    from ml_service.batch import worker  # noqa: F401


def run_job(settings, spec: JobSpec, say=print) -> JobResult:
    """Run (or resume) a batch job; the counts. BatchError when it cannot run or rejects too many rows."""
    from ml_service.batch.recorder import Recorder
    from ml_service.cli_support import model_of

    _check(spec)
    model.check_ref(spec.model)
    parts = source.list_parts(spec.input)
    settings = settings.for_registered(model_of(spec.model))
    spec.output.mkdir(parents=True, exist_ok=True)
    (spec.output / "_rejects").mkdir(exist_ok=True)
    previous = manifest.load(spec.output)
    with Recorder(settings) as recorder:
        recorder.send("resolve", spec.model)
        if previous is None:  # a new job: download the model now, while the input is read
            recorder.send("download", str(spec.output / "_model"))
        plan = source.scan(parts, spec.chunk_rows)
        _warm_up()
        name, version = recorder.receive()
        identity = {"model_name": name, "model_version": version, "input_digest": plan.digest,
                    "chunk_rows": spec.chunk_rows}
        if previous:
            manifest.check_same_job(previous, identity, spec.output)
        state = previous or {**identity, "input": str(spec.input), "chunks": {}, "status": "running"}
        done = manifest.verified(spec.output, state["chunks"])
        if state["status"] == "finished" and len(done) == len(state["chunks"]):
            totals = _totals(done)
            say(f"nothing to do: the job in {spec.output} finished already ({totals['scored']:,} rows scored, "
                f"{totals['rejected']:,} rejected, {name} v{version})")
            return _verdict(spec, JobResult(**totals, seconds=0.0, run_id=state.get("run_id", ""),
                                            nothing_to_do=True, model_name=name, model_version=version), say)
        if previous is not None:
            recorder.send("download", str(spec.output / "_model"))
        directory = Path(recorder.receive())
        state.update(chunks=done, status="running")
        _clean(spec.output, done)
        batch_model = model.describe(settings, name, version, directory)
        columns = {part: model.columns_to_read(batch_model.schema, part.columns(), str(part.path)) for part in parts}
        workers = spec.workers or len(os.sched_getaffinity(0))
        with _pool(workers, batch_model, spec.output, settings.root) as executor:
            tasks = source.tasks(parts, plan, columns.__getitem__, spec.chunk_rows)
            return _run(recorder, spec, batch_model, state, done, executor, workers, tasks, plan.rows, say)


def _run(recorder, spec, batch_model, state, done, executor, workers, tasks, rows, say) -> JobResult:
    resumed = f", resuming after {len(done)} finished chunk(s)" if done else ""
    say(f"batch {batch_model.name} v{batch_model.version}: {spec.input} -> {spec.output} ({workers} workers, "
        f"{spec.chunk_rows:,} rows a chunk{resumed})")
    progress = Progress(rows, already=_totals(done)["rows"])
    started = time.monotonic()

    def record_start() -> None:
        state["run_id"] = recorder.call("start", dict(state), spec)
        manifest.save(spec.output, state)

    try:
        scored_now = _score(executor, workers, spec, tasks, state, progress, record_start)
    except BaseException:
        progress.done()
        if state.get("run_id"):
            recorder.call("finish", state["run_id"], _totals(state["chunks"]), time.monotonic() - started, 0, True)
        raise
    progress.done()
    seconds = time.monotonic() - started
    _write_rejects(spec.output, state["chunks"])
    state["status"] = "finished"
    manifest.save(spec.output, state)
    shutil.rmtree(spec.output / "_model", ignore_errors=True)
    totals = _totals(state["chunks"])
    result = JobResult(**totals, seconds=seconds, run_id=state["run_id"], model_name=batch_model.name,
                       model_version=batch_model.version)
    failed = totals["rejected"] > spec.max_reject_fraction * totals["rows"]
    recorder.call("finish", state["run_id"], totals, seconds, scored_now, failed)
    say(f"scored {totals['scored']:,} of {totals['rows']:,} rows, rejected {totals['rejected']:,} in {seconds:.2f}s "
        f"({scored_now / max(seconds, 1e-9):,.0f} rows/s now); MLflow run {state['run_id']}")
    return _verdict(spec, result, say)


def _verdict(spec: JobSpec, result: JobResult, say=print) -> JobResult:
    """result, or a BatchError when the share of rejected rows is above the threshold."""
    if result.rejected:
        say(f"rejected rows: {spec.output / '_rejects.csv'} (row, reason, values)")
    if result.rejected > spec.max_reject_fraction * result.rows:
        share = result.rejected / max(result.rows, 1)
        raise BatchError(f"{result.rejected:,} of {result.rows:,} rows rejected ({share:.2%}), above "
                         f"--max-reject-fraction {spec.max_reject_fraction:g}: see {spec.output / '_rejects.csv'}")
    return result
