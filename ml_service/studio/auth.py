"""Who is using the Studio: sessions from a login (the Studio's users, or in team mode the team server's:
`logins.py`) or a trusted reverse-proxy header, and the CSRF token every POST must carry.

Sessions live in this process's memory (a restart logs everyone out); the cookie holds only a
random session id, HttpOnly and SameSite=Strict. The identity never comes from a form field.
Before login nothing is stored: the anonymous session (the login form's CSRF token) is a signed
cookie `anon.NONCE.SIGNATURE`, so requests without a login cannot grow the session table (issue 24).
"""
from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import parse_qsl, quote

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import PlainTextResponse, RedirectResponse

COOKIE = "mlops_studio"
IDLE_SECONDS = 12 * 3600
PUBLIC = ("/login", "/static/")
FORM_LIMIT = 64 * 1024
ANONYMOUS = "anon."


@dataclass
class Session:
    """One browser's session: who (empty before login) and its CSRF token."""

    id: str
    user: str = ""
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    seen: float = field(default_factory=time.time)
    confirmed: float = field(default_factory=time.monotonic)  # when the user's store last confirmed the user
    stamp: str = ""  # the user's password stamp at login (team mode, logins.stamp): a change ends the session


class Sessions:
    """Session ids -> sessions, in memory, expiring after IDLE_SECONDS without a request."""

    def __init__(self):
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._key = secrets.token_bytes(32)  # signs anonymous sessions; a restart invalidates them

    def __len__(self) -> int:
        return len(self._sessions)

    def _sign(self, what: str, nonce: str) -> str:
        return hmac.new(self._key, f"{what}:{nonce}".encode(), "sha256").hexdigest()

    def anonymous(self, session_id: str | None = None) -> Session | None:
        """A session before login, stored nowhere: a fresh one, or the one session_id signs (None if forged)."""
        if session_id is None:
            nonce = secrets.token_urlsafe(24)
            session_id = f"{ANONYMOUS}{nonce}.{self._sign('id', nonce)}"
        try:
            nonce, signature = session_id[len(ANONYMOUS):].rsplit(".", 1)
        except ValueError:
            return None
        if not hmac.compare_digest(signature, self._sign("id", nonce)):
            return None
        return Session(session_id, "", self._sign("csrf", nonce))

    def new(self, user: str = "", stamp: str = "") -> Session:
        """A fresh session (a new id: a login never keeps the id it came with)."""
        session = Session(secrets.token_urlsafe(32), user, stamp=stamp)
        with self._lock:
            self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session of an id, or None."""
        if not session_id:
            return None
        if session_id.startswith(ANONYMOUS):
            return self.anonymous(session_id)
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            now = time.time()
            if now - session.seen > IDLE_SECONDS:
                del self._sessions[session_id]
                return None
            session.seen = now
            return session

    def drop(self, session_id: str) -> None:
        """Log a session out."""
        if session_id.startswith(ANONYMOUS):
            return
        with self._lock:
            self._sessions.pop(session_id, None)


def set_cookie(response, session: Session, secure: bool) -> None:
    """The session cookie: HttpOnly, SameSite=Strict, Secure over HTTPS."""
    response.set_cookie(COOKIE, session.id, httponly=True, samesite="strict", secure=secure, path="/")


class AuthMiddleware:
    """Attaches the session to every request; sends anyone without an identity to /login.

    With a trusted header configured (a reverse proxy that authenticates), the header names the
    user and the login form is not used; requests without it are refused.

    still_a_user(name, stamp) (team mode: the team server's users) is asked about a session's user at most every
    recheck_seconds: False (the user was deleted, or its password changed) ends the session; None (the store cannot
    say) keeps it until the next look-up.
    """

    def __init__(self, app, sessions: Sessions, trusted_header: str = "",
                 still_a_user: Callable[[str, str], bool | None] | None = None, recheck_seconds: float = 60.0):
        self.app = app
        self.sessions = sessions
        self.trusted_header = trusted_header.lower()
        self.still_a_user, self.recheck_seconds = still_a_user, recheck_seconds

    async def _still_valid(self, session: Session) -> bool:
        """False when the session's user is gone from its store (the session is then dropped)."""
        import asyncio

        if self.still_a_user is None or time.monotonic() - session.confirmed < self.recheck_seconds:
            return True
        answer = await asyncio.to_thread(self.still_a_user, session.user, session.stamp)
        if answer is False:
            self.sessions.drop(session.id)
            return False
        session.confirmed = time.monotonic()  # asked again after the interval (a hung server delays one request)
        return True

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        conn = HTTPConnection(scope)
        session = self.sessions.get(conn.cookies.get(COOKIE))
        new_cookie = None
        if self.trusted_header:
            user = conn.headers.get(self.trusted_header, "").strip()
            if not user:
                response = PlainTextResponse(f"the Studio expects the header {self.trusted_header} from its "
                                             "reverse proxy", status_code=401)
                return await response(scope, receive, send)
            if session is None or session.user != user:
                session = new_cookie = self.sessions.new(user)
        elif session is not None and session.user and not await self._still_valid(session):
            session = None
        path = scope["path"]
        if session is None or (not session.user and not path.startswith(PUBLIC)):
            if path.startswith(PUBLIC):
                session = new_cookie = self.sessions.anonymous()
            else:
                target = path + (f"?{scope['query_string'].decode()}" if scope.get("query_string") else "")
                response = RedirectResponse(f"/login?next={quote(target)}", status_code=303)
                return await response(scope, receive, send)
        scope["studio.session"] = session

        async def send_with_cookie(message):
            if new_cookie is not None and message["type"] == "http.response.start":
                holder = PlainTextResponse("")
                set_cookie(holder, new_cookie, scope.get("scheme") == "https")
                message["headers"] = [*message.get("headers", []),
                                      *[(k, v) for k, v in holder.raw_headers if k == b"set-cookie"]]
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def session_of(request: Request) -> Session:
    """The request's session (the middleware always sets one)."""
    return request.scope["studio.session"]


async def read_form(request: Request) -> dict[str, str]:
    """A urlencoded form (the only kind the Studio's pages send), at most FORM_LIMIT bytes."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise HTTPException(415, "expected a form (application/x-www-form-urlencoded)")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_LIMIT:
            raise HTTPException(413, f"a form may have at most {FORM_LIMIT} bytes")
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=50)
    except (UnicodeDecodeError, ValueError) as exc:
        raise HTTPException(400, f"malformed form: {exc}") from None
    return dict(pairs)


async def checked_form(request: Request) -> dict[str, str]:
    """The form of a POST, after checking its CSRF token against the session's; 403 otherwise."""
    form = await read_form(request)
    token = str(form.get("csrf") or "")
    if not token or not hmac.compare_digest(token, session_of(request).csrf):
        raise HTTPException(403, "the form's CSRF token is missing or stale: reload the page and try again")
    return form


def safe_next(target: str | None) -> str:
    """A local path to go to after login (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
