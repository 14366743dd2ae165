"""A batch job, in up to three kinds of processes: the job's own plans, collects and (in the embedded
workspace) records the run; a short MLflow process (recorder.py) resolves, downloads and records when MLflow
is needed; the scoring workers score.

1. The model version is found first: in the embedded workspace straight from the registry's sqlite tables
   (local_store.py, no MLflow import, the model loaded in place), and the run is then recorded by the job's
   process itself, straight into the same store (light_recorder.py: the rows MLflow would write, in
   milliseconds, so no process spends 2 s of CPU importing MLflow beside the workers). Otherwise (a team
   server, a remote artifact store) the MLflow process resolves and downloads the version while the job's
   process reads the input once (digest, rows, chunk ranges), and records the run.
2. The job's process loads the model once and forks the workers from it (they share it, copy-on-write,
   and never import MLflow).
3. A new job hands out each chunk as soon as the pass over the input's bytes has found it (source.stream),
   so scoring starts before the pass ends; the pass never waits for the workers (the chunks it finds wait
   in a backlog of byte ranges), so the manifest is written soon. A resumed job checks the input's digest
   against its manifest first. Each worker reads its own chunks (a CSV byte range, Parquet row groups),
   scores them and writes one Parquet part a chunk; the manifest is updated after every chunk (once the
   digest is known), with at most IN_FLIGHT_PER_WORKER chunks a worker in flight, so memory does not grow
   with the input. The run is started once the input's digest is known, and finished at the end.

A rerun continues where a killed job stopped and a finished job is not redone. Rejected rows end in
<output>/_rejects.csv.

Everything the job writes besides the parts starts with "_" or ".", so `pandas.read_parquet(output)`
(pyarrow datasets skip such names) reads exactly the predictions.
"""
from __future__ import annotations

import os
import shutil
import time
from collections import deque
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
        parts = output / "_rejects"  # the chunks' own rejects (kept for a resumed job): none, so no folder
        if parts.is_dir() and not any(parts.iterdir()):
            parts.rmdir()
        return
    temporary = output / f"._rejects.csv.{os.getpid()}.tmp"
    pcsv.write_csv(pa.concat_tables(pq.read_table(f) for f in files), temporary)
    os.replace(temporary, target)


def _pool(workers: int, batch_model: model.BatchModel, output: Path, root: Path):
    """The worker processes: forked from this process after it loaded the model (they share it), or, when
    this process runs other threads (forking would be unsafe), a forkserver whose workers load it each.

    The cyclic garbage collector is paused while the libraries are imported and the model is loaded: they
    create some hundred thousand objects, which it would walk over again and again (about 0.1 s of CPU, on
    the job's serial start); they are frozen next, and it runs again afterwards."""
    import gc
    import multiprocessing
    import threading
    from concurrent.futures import ProcessPoolExecutor

    enabled = gc.isenabled()
    gc.disable()
    try:
        from ml_service.batch import worker

        info = {"name": batch_model.name, "version": batch_model.version}
        args = (str(batch_model.directory), batch_model.score_module, batch_model.schema, str(output), info,
                str(root))
        if threading.active_count() == 1:
            worker.init(*args)
            gc.freeze()  # the model's objects stay untouched by the collector: shared, not copied, by the workers
            # (no gc.collect() first: its pass over every object of the libraries just imported costs 50-80 ms
            # of the serial start, to free a little garbage that then stays in the parent, which scores nothing)
            return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["ml_service.batch.worker"])
        return ProcessPoolExecutor(workers, mp_context=context, initializer=worker.init, initargs=args)
    finally:
        if enabled:
            gc.enable()


class _Run:
    """The job's MLflow run, asked for once the input's digest is known and answered while the workers score
    (answers come in order, so the run id is read when it is there, or at the end). Its answer is read once,
    whatever it is: a resumed job's run may be a new one (the old one is gone), and a start that failed is
    not waited for again when the job ends."""

    def __init__(self, recorder, spec: JobSpec, state: dict):
        self.recorder, self.spec, self.state = recorder, spec, state
        self.asked = self.waiting = False
        self.run_id = None

    def ask(self) -> None:
        self.recorder.send("start", dict(self.state), self.spec)
        self.asked = self.waiting = True

    def poll(self) -> None:
        """Take the run id if the answer is there (and save it in the manifest)."""
        if self.waiting and self.recorder.answered():
            self.take()

    def take(self) -> str:
        if self.waiting:
            self.waiting = False
            self.run_id = self.state["run_id"] = self.recorder.receive()
            manifest.save(self.spec.output, self.state)
        if self.run_id is None:
            raise BatchError("the job's run could not be started")
        return self.run_id

    def finish(self, seconds: float, scored_now: int, failed: bool) -> None:
        if self.asked:
            self.recorder.call("finish", self.take(), _totals(self.state["chunks"]), seconds, scored_now, failed)


def _score(executor, workers: int, spec, tasks, state, plan, progress, run: _Run) -> int:
    """Score every chunk not done yet; update the manifest after each (once the input's digest is known, from
    the end of the pass over its bytes); the rows scored now."""
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
            if plan.complete:
                manifest.save(spec.output, state)
            scored_now += chunk["scored"]
            progress.update(chunk["rows"])
        run.poll()

    backlog: deque = deque()  # chunks found, not handed out yet (a few numbers each: the pass never waits)

    def hand_out() -> None:
        while backlog and len(pending) < workers * IN_FLIGHT_PER_WORKER:
            index, first, payload = backlog.popleft()
            pending[executor.submit(worker.score_chunk, index, first, payload)] = (index, first)

    try:
        for index, first, payload in tasks:  # a new job's pass over the input: chunks are scored meanwhile
            if str(index) in done:
                if done[str(index)]["first_row"] != first:
                    raise BatchError(f"chunk {index} of the input does not match the manifest; use another --output")
                continue
            backlog.append((index, first, payload))
            collect([future for future in pending if future.done()])
            hand_out()
        if not state["input_digest"]:  # a new job: the pass is over, its identity is complete
            state["input_digest"] = plan.digest
        progress.set_total(plan.rows)
        manifest.save(spec.output, state)
        run.ask()
        while pending or backlog:
            hand_out()
            collect(wait(pending, return_when=FIRST_COMPLETED).done)
    except BrokenProcessPool:
        raise BatchError("a worker process died, or could not load the model (see above); rerun the command "
                         "to resume") from None
    return scored_now


def run_job(settings, spec: JobSpec, say=print) -> JobResult:
    """Run (or resume) a batch job; the counts. BatchError when it cannot run or rejects too many rows."""
    from ml_service.batch import local_store
    from ml_service.batch.recording import open_recorder

    _check(spec)
    ref = model.check_ref(spec.model)
    parts = source.list_parts(spec.input)
    settings = settings.for_registered(ref.name)
    spec.output.mkdir(parents=True, exist_ok=True)
    previous = manifest.load(spec.output)
    found = local_store.find(settings, spec.model)
    with open_recorder(settings, found) as recorder:
        if found is None:  # MLflow resolves (and, for a new job, downloads) it while the input is read
            recorder.send("resolve", spec.model)
            if previous is None:
                recorder.send("download", str(spec.output / "_model"))
        plan = source.scan(parts, spec.chunk_rows) if previous is not None or found is None else None
        name, version, directory = found or (*recorder.receive(), None)
        identity = {"model_name": name, "model_version": version, "input_digest": plan.digest if plan else "",
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
        if directory is None:
            if previous is not None:
                recorder.send("download", str(spec.output / "_model"))
            directory = Path(recorder.receive())
        state.update(chunks=done, status="running")
        _clean(spec.output, done)
        batch_model = model.describe(settings, name, version, directory)
        columns = {part: model.columns_to_read(batch_model.schema, part.columns(), str(part.path)) for part in parts}
        workers = spec.workers or len(os.sched_getaffinity(0))
        numeric = model.numeric_columns(batch_model.schema, columns)
        with _pool(workers, batch_model, spec.output, settings.root) as executor:
            if plan is None:
                plan = source.Scan("", 0)
                tasks = source.stream(parts, spec.chunk_rows, columns.__getitem__, plan, numeric)
            else:
                tasks = source.tasks(parts, plan, columns.__getitem__, spec.chunk_rows, numeric)
            return _run(recorder, spec, batch_model, state, done, executor, workers, tasks, plan, say)


def _run(recorder, spec, batch_model, state, done, executor, workers, tasks, plan, say) -> JobResult:
    resumed = f", resuming after {len(done)} finished chunk(s)" if done else ""
    say(f"batch {batch_model.name} v{batch_model.version}: {spec.input} -> {spec.output} ({workers} workers, "
        f"{spec.chunk_rows:,} rows a chunk{resumed})")
    progress = Progress(plan.rows if plan.complete else None, already=_totals(done)["rows"])
    started = time.monotonic()
    run = _Run(recorder, spec, state)
    try:
        scored_now = _score(executor, workers, spec, tasks, state, plan, progress, run)
    except BaseException:
        progress.done()
        try:
            run.finish(time.monotonic() - started, 0, True)
        except BatchError:  # the MLflow process is gone too: the error that stopped the job is the one to tell
            pass
        raise
    progress.done()
    seconds = time.monotonic() - started
    _write_rejects(spec.output, state["chunks"])
    state["status"] = "finished"
    manifest.save(spec.output, state)
    shutil.rmtree(spec.output / "_model", ignore_errors=True)
    totals = _totals(state["chunks"])
    failed = totals["rejected"] > spec.max_reject_fraction * totals["rows"]
    run.finish(seconds, scored_now, failed)
    result = JobResult(**totals, seconds=seconds, run_id=state["run_id"], model_name=batch_model.name,
                       model_version=batch_model.version)
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
