"""Deployments: each environment with its version, URL, live health and history; for QA a
redeploy or rollback, run as `mlops deploy qa` in a process of its own."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse

from ml_service.studio.auth import checked_form
from ml_service.studio.web import studio_of

HEALTH_TIMEOUT = 1.0
VERSION = re.compile(r"[0-9]{1,9}\Z")  # ASCII digits only: not "1\n", not "١"
ACTION_LOG_LINES = 20


def health(url: str) -> str:
    """ready | not ready: <why>, from the scoring service's /v2/health/ready."""
    if not url.startswith(("http://", "https://")):
        return "no URL"
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/v2/health/ready", timeout=HEALTH_TIMEOUT) as response:
            return "ready" if response.status == 200 else f"not ready: HTTP {response.status}"
    except OSError as exc:
        return f"not ready: {getattr(exc, 'reason', exc)}"


def _action_logs(settings) -> list[tuple[str, str]]:
    folder = settings.state_dir / "studio" / "actions"
    if not folder.is_dir():
        return []
    logs = sorted(folder.glob("*.log"), key=lambda p: p.stat().st_mtime, reverse=True)[:5]
    return [(p.stem, "\n".join(p.read_text(errors="replace").splitlines()[-ACTION_LOG_LINES:])) for p in logs]


def deployments(request: Request):
    """GET /deployments."""
    from ml_service.deploy import records, status

    studio = studio_of(request)
    rows = records.list_deployments(studio.settings)
    current = status.checked(records.current_rows(rows))
    with ThreadPoolExecutor(max_workers=8) as pool:
        healths = list(pool.map(lambda pair: health(pair[0].url) if pair[1] == records.LIVE else "",
                                current))
    environments = sorted(set(studio.settings.environments or {}) | {d.environment for d in rows})
    rollback = {}
    for deployment, _ in current:
        if deployment.environment == "qa" and deployment.status == records.LIVE:
            earlier = next((d for d in rows if d.environment == "qa" and d.model_name == deployment.model_name
                            and d.status == records.REPLACED and d.version != deployment.version), None)
            rollback[deployment.model_name] = earlier.version if earlier else ""
    return studio.render(request, "deployments.html", environments=environments,
                         current=[(d, s, h) for (d, s), h in zip(current, healths)], history=rows[:200],
                         rollback=rollback, actions=_action_logs(studio.settings))


async def qa_action(request: Request):
    """POST /deployments/qa: deploy a version of a model to QA again (redeploy or rollback)."""
    studio = studio_of(request)
    form = await checked_form(request)
    model, version = str(form.get("model") or ""), str(form.get("version") or "")
    if model not in {m.name for m in studio.settings.models} or not VERSION.match(version):
        raise HTTPException(400, f"cannot deploy {model!r} version {version!r}: not a model of mlops.yml "
                                 "and a version number")
    folder = studio.settings.state_dir / "studio" / "actions"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{time.strftime('%Y%m%d-%H%M%S')}-qa-{model}-{version}"
    env = {**os.environ, "MLOPS_ROOT": str(studio.settings.root), "MLOPS_STATE_DIR": str(studio.settings.state_dir)}
    with open(folder / f"{name}.log", "ab") as log:
        log.write(f"{form.get('action') or 'deploy'} by {request.scope['studio.session'].user}: "
                  f"mlops deploy qa --model {model}:{version}\n".encode())
        log.flush()
        process = subprocess.Popen([sys.executable, "-m", "ml_service.cli", "deploy", "qa", "--model",
                                    f"{model}:{version}"], env=env, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True, cwd=studio.settings.root)
    threading.Thread(target=_note_exit, args=(process, folder / f"{name}.log"), daemon=True).start()
    return RedirectResponse("/deployments", status_code=303)


def _note_exit(process: subprocess.Popen, log) -> None:
    """Wait for an action's process (no zombie left) and end its log with how it ended."""
    code = process.wait()
    with open(log, "a") as handle:
        handle.write(f"[{'done' if code == 0 else f'failed: exit code {code}'}]\n")
