"""MLflow for a batch job, in a child process of its own: it resolves the model version, downloads its files,
and starts and ends the job's run, while the job's process (which never imports MLflow) reads the input,
loads the model once and forks the scoring workers from it.

Requests are answered in the order they were sent, so the job sends "resolve" and "download" at once and
plans the input while MLflow starts. When the model was found without MLflow (local_store.py), the child's
work (mostly importing MLflow) runs beside the job's loading of the model, off its critical path. The child
is forked before any heavy import when the job's process has no other thread (else it is spawned); it
ignores Ctrl-C (the job ends the run) and exits when the job does.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from ml_service.batch import BatchError


def _resolve(state: dict, ref: str) -> tuple[str, str]:
    from ml_service.batch import model

    state["version"] = model.resolve(state["client"], ref)
    return state["version"].name, str(state["version"].version)


def _download(state: dict, dest: str) -> str:
    from ml_service.deploy.image import download_model

    if "version" not in state:
        raise BatchError("no model version to download")
    shutil.rmtree(dest, ignore_errors=True)
    Path(dest).mkdir(parents=True)
    return str(download_model(state["version"], Path(dest)))


def _start(state: dict, manifest: dict, spec) -> str:
    from ml_service.batch import record

    return record.start(state["store"], state["settings"], manifest, spec)


def _finish(state: dict, *args) -> None:
    from ml_service.batch import record

    record.finish(state["store"], *args)


HANDLERS = {"resolve": _resolve, "download": _download, "start": _start, "finish": _finish}


def serve(conn, settings) -> None:
    """The child: connect to MLflow, then answer requests until "close" or the job's end."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    state, failure = {"settings": settings}, None
    try:
        from ml_service.workspace.mlflow_run_store import MlflowRunStore
        from ml_service.workspace.tracking import connect

        state["client"] = connect(settings)
        state["store"] = MlflowRunStore(settings, state["client"])
    except Exception as exc:  # answered to every request
        failure = f"cannot open the MLflow store: {type(exc).__name__}: {exc}"
    while True:
        try:
            name, args = conn.recv()
        except (EOFError, OSError):
            return
        if name == "close":
            return
        try:
            if failure:
                raise BatchError(failure)
            conn.send(("ok", HANDLERS[name](state, *args)))
        except Exception as exc:
            message = str(exc) if isinstance(exc, BatchError) else f"MLflow: {type(exc).__name__}: {exc}"
            conn.send(("error", message))


class Recorder:
    """The job's side: send(request, *args) now, receive() its answer later (in order), or call() both."""

    def __init__(self, settings):
        import multiprocessing
        import threading

        context = multiprocessing.get_context("fork" if threading.active_count() == 1 else "spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=serve, args=(child, settings), name="mlops-batch-mlflow", daemon=True)
        self.process.start()
        child.close()

    def send(self, name: str, *args) -> None:
        """Ask for name(*args); the answer is read by receive()."""
        self.conn.send((name, args))

    def answered(self) -> bool:
        """True when an answer is waiting to be received."""
        return self.conn.poll()

    def receive(self):
        """The answer to the oldest request not read yet; a BatchError when it failed."""
        try:
            status, value = self.conn.recv()
        except (EOFError, OSError):
            raise BatchError("the MLflow process of the batch job died; rerun the command to resume") from None
        if status != "ok":
            raise BatchError(value)
        return value

    def call(self, name: str, *args):
        """name(*args) in the child, waited for."""
        self.send(name, *args)
        return self.receive()

    def close(self) -> None:
        """End the child (it has answered everything asked)."""
        try:
            self.conn.send(("close", ()))
        except OSError:
            pass
        self.process.join(5)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join()
        self.conn.close()

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
