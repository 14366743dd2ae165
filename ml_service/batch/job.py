"""A batch job: the input read in chunks, scored by a pool of worker processes (the model loaded once in
each), one Parquet part a chunk, the manifest updated after every chunk; a rerun continues where a killed
job stopped and a finished job is not redone. Rejected rows end in <output>/_rejects.csv.

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


def _pool(workers: int, batch_model: model.BatchModel, settings, output: Path):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from ml_service.batch import worker

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["ml_service.batch.worker"])
    info = {"name": batch_model.name, "version": batch_model.version}
    return ProcessPoolExecutor(workers, mp_context=context, initializer=worker.init,
                               initargs=(str(batch_model.directory), batch_model.score_module, batch_model.schema,
                                         str(output), info, str(settings.root)))


def _score(executor, workers: int, spec, parts, columns, state, progress) -> int:
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
        for index, first, table in source.chunks(parts, columns.__getitem__, spec.chunk_rows):
            if str(index) in done:
                if done[str(index)]["first_row"] != first:
                    raise BatchError(f"chunk {index} of the input does not match the manifest; use another --output")
                continue
            while len(pending) >= workers * IN_FLIGHT_PER_WORKER:
                collect(wait(pending, return_when=FIRST_COMPLETED).done)
            pending[executor.submit(worker.score_chunk, index, first, table)] = (index, first)
        while pending:
            collect(wait(pending, return_when=FIRST_COMPLETED).done)
    except BrokenProcessPool:
        raise BatchError("a worker process died, or could not load the model (see above); rerun the command "
                         "to resume") from None
    return scored_now


def run_job(settings, spec: JobSpec, say=print) -> JobResult:
    """Run (or resume) a batch job; the counts. BatchError when it cannot run or rejects too many rows."""
    from ml_service.workspace.tracking import connect

    _check(spec)
    parts = source.list_parts(spec.input)
    client = connect(settings)
    version = model.resolve(client, spec.model)
    settings = settings.for_registered(version.name)
    spec.output.mkdir(parents=True, exist_ok=True)
    (spec.output / "_rejects").mkdir(exist_ok=True)
    input_digest, estimate = source.digest(parts)
    identity = {"model_name": version.name, "model_version": str(version.version), "input_digest": input_digest,
                "chunk_rows": spec.chunk_rows}
    previous = manifest.load(spec.output)
    if previous:
        manifest.check_same_job(previous, identity, spec.output)
    state = previous or {**identity, "input": str(spec.input), "chunks": {}, "status": "running"}
    done = manifest.verified(spec.output, state["chunks"])
    if state["status"] == "finished" and len(done) == len(state["chunks"]):
        totals = _totals(done)
        say(f"nothing to do: the job in {spec.output} finished already ({totals['scored']:,} rows scored, "
            f"{totals['rejected']:,} rejected, {version.name} v{version.version})")
        return _verdict(spec, JobResult(**totals, seconds=0.0, run_id=state.get("run_id", ""), nothing_to_do=True,
                                        model_name=version.name, model_version=str(version.version)), say)
    state.update(chunks=done, status="running")
    _clean(spec.output, done)
    batch_model = model.prepare(settings, version, spec.output / "_model")
    columns = {part: model.columns_to_read(batch_model.schema, part.columns(), str(part.path)) for part in parts}
    workers = spec.workers or len(os.sched_getaffinity(0))
    with _pool(workers, batch_model, settings, spec.output) as executor:
        return _run(client, settings, spec, version, state, done, executor, workers, parts, columns, estimate, say)


def _run(client, settings, spec, version, state, done, executor, workers, parts, columns, estimate, say) -> JobResult:
    from ml_service.batch import record, worker

    for _ in range(workers):  # start the workers (and load the model in each) while the run is recorded
        executor.submit(worker.ready)
    state["run_id"] = record.start(client, settings, state, spec)
    manifest.save(spec.output, state)
    resumed = f", resuming after {len(done)} finished chunk(s)" if done else ""
    say(f"batch {version.name} v{version.version}: {spec.input} -> {spec.output} ({workers} workers, "
        f"{spec.chunk_rows:,} rows a chunk{resumed})")
    progress = Progress(estimate, already=_totals(done)["rows"])
    started = time.monotonic()
    try:
        scored_now = _score(executor, workers, spec, parts, columns, state, progress)
    except BaseException:
        progress.done()
        totals = _totals(state["chunks"])
        record.finish(client, state["run_id"], totals, time.monotonic() - started, 0, failed=True)
        raise
    progress.done()
    seconds = time.monotonic() - started
    _write_rejects(spec.output, state["chunks"])
    state["status"] = "finished"
    manifest.save(spec.output, state)
    shutil.rmtree(spec.output / "_model", ignore_errors=True)
    totals = _totals(state["chunks"])
    result = JobResult(**totals, seconds=seconds, run_id=state["run_id"], model_name=version.name,
                       model_version=str(version.version))
    failed = totals["rejected"] > spec.max_reject_fraction * totals["rows"]
    record.finish(client, state["run_id"], totals, seconds, scored_now, failed=failed)
    say(f"scored {totals['scored']:,} of {totals['rows']:,} rows, rejected {totals['rejected']:,} in {seconds:.1f}s "
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
