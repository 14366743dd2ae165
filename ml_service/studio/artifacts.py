"""How the Studio serves what a pipeline or a model produced: never as active content of its own origin.

Any pipeline step can publish a file, so an artifact is the writing of whoever controls a step. Served
inline from the Studio's origin, an SVG or HTML file (or a .js file a page loads with `<script src>`) runs
with the session of whoever opens it, e.g. an approver (issue 24, finding 2). So every artifact gets
`Content-Security-Policy: sandbox` (no scripts, a unique origin) and `X-Content-Type-Options: nosniff`, and
is an attachment, except:
- PNG, JPEG and GIF images (inert), shown inline;
- SVG when an `<img>` asks for it (an image context runs no script), HTML and SVG when a sandboxed
  `<iframe>` asks for it (the pages' iframes have `sandbox` without allow-scripts): inline, still under
  the sandbox policy. Opened directly (a link, `/login?next=...`), they download.
Everything else is `application/octet-stream`, which a browser never runs as a script under nosniff.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse

SANDBOX = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"
INERT_IMAGES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif"}
FRAMED = {".html": "text/html", ".htm": "text/html", ".svg": "image/svg+xml"}


def _inline_type(path: Path, request: Request) -> str | None:
    """The media type to show path inline with, None when it must download."""
    suffix = path.suffix.lower()
    if suffix in INERT_IMAGES:
        return INERT_IMAGES[suffix]
    destination = request.headers.get("sec-fetch-dest", "")
    if suffix in FRAMED and (destination == "iframe" or (destination == "image" and suffix == ".svg")):
        return FRAMED[suffix]
    return None


def response(path: Path, request: Request, remove: Path | None = None) -> FileResponse:
    """The artifact at path as the Studio may serve it (see the module); remove: a temporary copy's folder,
    deleted once sent."""
    kind = _inline_type(path, request)
    headers = {"Content-Security-Policy": SANDBOX, "X-Content-Type-Options": "nosniff",
               "Cache-Control": "private, no-store"}
    cleanup = BackgroundTask(shutil.rmtree, remove, ignore_errors=True) if remove is not None else None
    if kind is not None:
        return FileResponse(path, media_type=kind, headers=headers, content_disposition_type="inline",
                            background=cleanup)
    return FileResponse(path, media_type="application/octet-stream", headers=headers, filename=path.name,
                        content_disposition_type="attachment", background=cleanup)
