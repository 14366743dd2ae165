"""The Studio's ASGI app: routes, login, security headers, error pages.

Server-rendered with Starlette and Jinja2 (autoescaped), a few lines of plain JavaScript for live
logs (server-sent events); nothing to build. Every page needs an identity; every POST a CSRF token.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ml_service.config import Settings
from ml_service.studio import logins, pages_ci, pages_deploy, pages_ml
from ml_service.studio.auth import COOKIE, AuthMiddleware, checked_form, safe_next, session_of, set_cookie
from ml_service.studio.limits import LoginLimits, minutes
from ml_service.studio.web import HERE, Studio, studio_of

POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-src 'self'; "
          "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'")
# studio: hosts: names the Studio answers to besides these (a DNS name pointing elsewhere is refused: DNS
# rebinding); studio: trusted_proxies: addresses whose X-Forwarded-For is believed (none by default: a local
# client's header would otherwise choose the address the login limit counts). Parsed in sections.py.
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
RECHECK_SECONDS = 60.0  # team mode: a session's user is looked up on the server at most this often


def server_options(config: dict) -> dict:
    """uvicorn's options for the Studio: X-Forwarded-For is honoured only from configured proxies."""
    proxies = config.get("trusted_proxies") or []
    return {"proxy_headers": bool(proxies), "forwarded_allow_ips": ",".join(proxies) or "127.0.0.1"}


def host_name(value: str) -> str:
    """The name part of a Host header (no port; an IPv6 address without brackets), lowercased."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class HostCheck:
    """Refuses a request whose Host is not this machine's loopback name or a configured name (400)."""

    def __init__(self, app, hosts: list[str]):
        self.app, self.allowed = app, {*LOCAL_HOSTS, *hosts}

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            host = dict(scope.get("headers") or []).get(b"host")
            if host is not None and host_name(host.decode("latin-1")) not in self.allowed:
                response = HTMLResponse("unexpected Host header: add the name under studio: hosts: in mlops.yml",
                                        status_code=400)
                return await response(scope, receive, send)
        await self.app(scope, receive, send)


def studio_config(settings: Settings) -> dict:
    """The `studio:` section of mlops.yml (trusted_header: a reverse proxy's user header), checked by load_settings."""
    return dataclasses.asdict(settings.studio)


def login_form(request: Request, status_code: int = 200, **context):
    """The login page: the form, and who can log in (the team server's users, or the Studio's own)."""
    studio = studio_of(request)
    return studio.render(request, "login.html", status_code=status_code, no_users=logins.no_users(studio.settings),
                         team_server=logins.team_server(studio.settings), **context)


def login_page(request: Request):
    """GET /login."""
    return login_form(request, next=safe_next(request.query_params.get("next")))


async def login(request: Request):
    """POST /login: a name and password (checked by the team server in team mode, else a Studio user's); a new
    session holding only the name on success."""
    import asyncio

    studio = studio_of(request)
    form = await checked_form(request)
    name, password = str(form.get("user") or ""), str(form.get("password") or "")
    target = safe_next(str(form.get("next") or ""))
    limits: LoginLimits = request.app.state.login_limits
    address = request.client.host if request.client else ""
    refused, wait = limits.begin(name, address)
    if refused:
        who = "for this user" if refused == "user" else "from this address"
        count = minutes(wait)
        response = login_form(request, 429, next=target, error=f"too many failed logins {who}; try again in "
                                                               f"{count} minute{'' if count == 1 else 's'}")
        response.headers["Retry-After"] = str(math.ceil(wait))
        return response
    try:
        user = await asyncio.to_thread(logins.check, studio.settings, name, password)
    except logins.LoginUnavailable as exc:  # nobody gets in while the server cannot say; no failure counted
        import logging

        logging.getLogger("mlops.studio").error("login of %r not checked: %s", name, exc)  # the page: no address
        limits.unchecked(name, address)
        return login_form(request, 503, next=target, error="the team workspace's MLflow server cannot check "
                                                           "passwords now; try again later")
    if user is None:
        return login_form(request, 401, next=target, error="wrong user or password")
    limits.succeeded(name, address)
    studio.sessions.drop(session_of(request).id)
    response = RedirectResponse(target, status_code=303)
    stamp = await asyncio.to_thread(logins.stamp, studio.settings, user)  # a later password change ends it
    set_cookie(response, studio.sessions.new(user, stamp), request.url.scheme == "https")
    return response


async def logout(request: Request):
    """POST /logout."""
    await checked_form(request)
    studio_of(request).sessions.drop(session_of(request).id)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


def home(request: Request):
    """GET /: the approvals when something waits, else the pipeline runs."""
    waiting = studio_of(request).store().approvals(status="pending")
    return RedirectResponse("/approvals" if waiting else "/runs", status_code=303)


async def error_page(request: Request, exc: HTTPException):
    """Errors as a page (the message escaped) for people, plain text for event streams."""
    if "studio.session" not in request.scope:
        return HTMLResponse(str(exc.detail), status_code=exc.status_code)
    return studio_of(request).render(request, "error.html", status_code=exc.status_code, detail=exc.detail)


async def server_error(request: Request, exc: Exception):
    """An unexpected failure (e.g. the MLflow server does not answer): its traceback to the Studio's log,
    one line to the page."""
    import logging

    logging.getLogger("mlops.studio").error("%s %s failed", request.method, request.url.path, exc_info=exc)
    detail = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:500]
    if "studio.session" not in request.scope:
        return HTMLResponse("internal error", status_code=500)
    return studio_of(request).render(request, "error.html", status_code=500,
                                     detail=f"this page failed: {detail} (the Studio's log has the details)")


class SecurityHeaders:
    """A strict Content-Security-Policy (no inline scripts), no framing by others, no sniffing."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        async def send_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                extra = {b"content-security-policy": POLICY.encode(), b"x-content-type-options": b"nosniff",
                         b"referrer-policy": b"same-origin", b"x-frame-options": b"SAMEORIGIN"}
                headers += [(k, v) for k, v in extra.items() if k not in names]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_headers if scope["type"] == "http" else send)


def create_app(settings: Settings, mlflow_url: str = "http://127.0.0.1:5000",
               clock: Callable[[], float] = time.monotonic, recheck_seconds: float = RECHECK_SECONDS) -> Starlette:
    """The Studio for a workspace; mlflow_url: where the MLflow UI is (`mlops ui`, or the team's server);
    clock: the login limits' time in seconds (tests pass a fake one instead of sleeping); recheck_seconds: how
    often, in team mode, a session's user is looked up on the server (a deleted user's session ends)."""
    config = studio_config(settings)
    studio = Studio(settings, mlflow_url)
    routes = [
        Route("/", home),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/runs", pages_ci.run_list),
        Route("/runs/{run:int}", pages_ci.run_page),
        Route("/runs/{run:int}/artifacts/{path:path}", pages_ci.artifact),
        Route("/runs/{run:int}/log/{path:path}", pages_ci.log_stream),
        Route("/api/runs/{run:int}", pages_ci.api_run),
        Route("/approvals", pages_ci.approvals),
        Route("/approvals/{run:int}", pages_ci.decide, methods=["POST"]),
        Route("/ml", pages_ml.ml_runs),
        Route("/ml/{run_id:str}", pages_ml.ml_run),
        Route("/ml/{run_id:str}/artifact/{path:path}", pages_ml.ml_artifact),
        Route("/models", pages_ml.models),
        Route("/deployments", pages_deploy.deployments),
        Route("/deployments/qa", pages_deploy.qa_action, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    middleware = [Middleware(SecurityHeaders), Middleware(HostCheck, hosts=config["hosts"]),
                  Middleware(AuthMiddleware, sessions=studio.sessions, trusted_header=config["trusted_header"],
                             still_a_user=logins.still_a_user(settings), recheck_seconds=recheck_seconds)]
    handlers = {HTTPException: error_page, Exception: server_error}
    app = Starlette(routes=routes, middleware=middleware, exception_handlers=handlers)
    app.state.studio = studio
    app.state.server_options = server_options(config)
    app.state.login_limits = LoginLimits(config["login_max_failures"], config["login_max_failures_per_address"],
                                         config["login_window_minutes"] * 60, clock)
    return app
