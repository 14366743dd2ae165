"""Pipeline run pages: the filtered list, one run (tree, logs tailing live, tests, coverage,
artifacts, trigger chain), and the approvals with Approve and Reject."""
from __future__ import annotations

import asyncio
import codecs
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, StreamingResponse

from ml_service.studio import evidence as evidence_mod
from ml_service.studio import runs as runs_mod
from ml_service.studio.auth import checked_form, session_of
from ml_service.studio.web import studio_of

FILTERS = ("pipeline", "branch", "result", "trigger")
TAIL_POLL = 0.25  # seconds between reads of a growing log
CHUNK = 64 * 1024


def _int(value, default: int = 1) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _run_or_404(store, run_id: int):
    try:
        return store.get_run(run_id)
    except KeyError:
        raise HTTPException(404, f"no pipeline run {run_id}") from None


def run_list(request: Request):
    """GET /runs: pipeline runs, newest first, filtered."""
    studio = studio_of(request)
    filters = {k: request.query_params.get(k, "") for k in FILTERS}
    listing = runs_mod.filtered(studio.store(), filters, _int(request.query_params.get("page")))
    return studio.render(request, "runs.html", listing=listing, filters=filters, outcome=runs_mod.outcome)


def run_page(request: Request):
    """GET /runs/{run}: one run."""
    studio = studio_of(request)
    store = studio.store()
    run = _run_or_404(store, request.path_params["run"])
    upstream, downstream = runs_mod.chain(store, run)
    return studio.render(request, "run.html", run=run, outcome=runs_mod.outcome(run),
                         tree=runs_mod.tree(store.records(run.id)), tests=runs_mod.test_results(store, run.id),
                         coverage=runs_mod.coverage(store, run.id), artifacts=runs_mod.artifacts(store, run.id),
                         upstream=upstream, downstream=downstream, approvals=store.approvals(run.id),
                         commit_message=runs_mod.commit_message(run),
                         summaries=(run.state or {}).get("summaries", []))


def artifact(request: Request):
    """GET /runs/{run}/artifacts/{path}: a published file, as studio/artifacts.py serves it (an attachment under
    a sandbox policy; never a script of the Studio's origin)."""
    from ml_service.studio import artifacts

    store = studio_of(request).store()
    path = runs_mod.artifact_file(store, request.path_params["run"], request.path_params["path"])
    if path is None:
        raise HTTPException(404, "no such artifact")
    return artifacts.response(path, request)


LINE_END = re.compile(r"\r\n|\r|\n")  # every line end of the SSE format: a step's CR must not start a field


def _sse(event: str, data: str) -> bytes:
    """One server-sent event; each line of data (CR, LF or CRLF ended, as EventSource reads them) a data field."""
    lines = "".join(f"data: {line}\n" for line in LINE_END.split(data))
    return f"event: {event}\n{lines}\n".encode()


async def log_stream(request: Request):
    """GET /runs/{run}/log/{path}: a step's log as server-sent events, tailing while the step runs."""
    studio = studio_of(request)
    run_id, path = request.path_params["run"], request.path_params["path"]
    store = studio.store()
    record = runs_mod.step_record(store, run_id, path)
    if record is None or record["kind"] != "step":
        raise HTTPException(404, f"run {run_id} has no step {path}")

    async def events():
        offset, pending = 0, b""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a piece may end inside a character
        while True:
            current = await asyncio.to_thread(runs_mod.step_record, store, run_id, path) or {}
            log = Path(current.get("log") or record.get("log") or "")
            try:
                with open(log, "rb") as handle:
                    handle.seek(offset)
                    data = handle.read(CHUNK)
            except (OSError, ValueError):
                data = b""
            if data:
                offset += len(data)
                text, _, pending = (pending + data).rpartition(b"\n")
                if len(pending) >= CHUNK:  # a line longer than a chunk (no newline, a progress bar): sent in pieces,
                    text, pending = (text + b"\n" + pending if text else pending), b""  # never held whole
                if text:
                    yield _sse("log", decoder.decode(text))
                continue
            if current.get("status") not in ("running", "pending"):
                if pending:
                    yield _sse("log", decoder.decode(pending, final=True))
                yield _sse("end", current.get("result") or current.get("status") or "")
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(TAIL_POLL)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def approvals(request: Request):
    """GET /approvals: every waiting run with the evidence to decide, and the decisions taken."""
    studio = studio_of(request)
    store = studio.store()
    pending = store.approvals(status="pending")
    client = studio.client() if pending else None
    items = [evidence_mod.gather(studio.settings, store, a, client) for a in pending]
    decided = [a for a in store.approvals() if a["status"] != "pending"][-20:][::-1]
    return studio.render(request, "approvals.html", items=items, decided=decided,
                         message=request.query_params.get("message", ""),
                         commit_message={i.run.id: runs_mod.commit_message(i.run) for i in items})


async def decide(request: Request):
    """POST /approvals/{run}: Approve (the run continues in a process of its own) or Reject."""
    from ml_service.ci.server import approvals, service

    studio = studio_of(request)
    form = await checked_form(request)
    run_id = request.path_params["run"]
    action = str(form.get("action") or "")
    if action not in ("approve", "reject"):
        raise HTTPException(400, "action must be approve or reject")
    comment = str(form.get("comment") or "")[:2000]
    stage = str(form.get("stage") or "") or None
    store = studio.store()
    user = session_of(request).user
    try:
        decided = await asyncio.to_thread(approvals.decide, studio.settings, store, run_id, action == "approve",
                                          comment, stage, approver=user)
    except service.CIError as exc:
        items = [evidence_mod.gather(studio.settings, store, a, studio.client())
                 for a in store.approvals(status="pending")]
        return studio.render(request, "approvals.html", status_code=403, items=items, decided=[],
                             error=str(exc), commit_message={i.run.id: runs_mod.commit_message(i.run) for i in items})
    if action == "approve" or decided.get("kind") == "validation":  # a rejected ManualValidation goes on too
        resume(studio.settings, run_id)
    return RedirectResponse(f"/runs/{run_id}", status_code=303)


def resume(settings, run_id: int) -> subprocess.Popen:
    """Continue an approved run in a process of its own (the engine needs a main thread), detached
    from the Studio; its console output goes to <state_dir>/studio/resume/<run>.log."""
    logs = settings.state_dir / "studio" / "resume"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MLOPS_ROOT": str(settings.root), "MLOPS_STATE_DIR": str(settings.state_dir)}
    with open(logs / f"{run_id}.log", "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "ml_service.studio.resume", str(run_id)], env=env,
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, cwd=settings.root)
    threading.Thread(target=process.wait, daemon=True).start()  # reaped when it ends: no zombie
    return process


def api_run(request: Request):
    """GET /api/runs/{run}: the run's status and records as JSON (what the run page polls)."""
    from starlette.responses import Response

    store = studio_of(request).store()
    run = _run_or_404(store, request.path_params["run"])
    body = {"id": run.id, "status": run.status, "result": run.result,
            "records": [{k: r[k] for k in ("path", "status", "result")} for r in store.records(run.id)]}
    return Response(json.dumps(body), media_type="application/json")
