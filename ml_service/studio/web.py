"""What every Studio page shares: the templates (autoescaped), the page context, the stores."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from ml_service.config import Settings
from ml_service.studio.auth import Sessions, session_of

HERE = Path(__file__).parent


def _when(seconds: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds)) if seconds else ""


def _took(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _number(value) -> str:
    return "" if value is None else f"{float(value):.4f}"


def environment() -> Environment:
    """Jinja2 with autoescaping on for every template: user-supplied strings are always escaped."""
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(when=_when, took=_took, number=_number)
    return env


@dataclass
class Studio:
    """The running Studio: settings, sessions, where the MLflow UI is, a lazily made MLflow client."""

    settings: Settings
    mlflow_url: str
    sessions: Sessions = field(default_factory=Sessions)
    templates: Environment = field(default_factory=environment)
    _client: object = None
    _store: object = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def store(self):
        """The CI run store, reconciled on every request (dead runs marked, expired approvals timed out)."""
        from ml_service.ci.server.service import open_store

        with self._lock:
            if self._store is None:
                self._store = open_store(self.settings)
                return self._store
        self._store.reconcile()
        return self._store

    def client(self):
        """An MlflowClient on the workspace (made once; MLflow is imported here, not at start-up)."""
        with self._lock:
            if self._client is None:
                import gc

                from ml_service.workspace.tracking import connect

                self._client = connect(self.settings)
                # MLflow's import leaves a large heap: keep it out of every later full collection, which
                # would otherwise pause a page for hundreds of milliseconds now and then.
                gc.collect()
                gc.freeze()
            return self._client

    def mlflow_run_url(self, experiment_id: str, run_id: str) -> str:
        """The MLflow UI page of a run."""
        return f"{self.mlflow_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"

    def render(self, request: Request, template: str, status_code: int = 200, **context) -> HTMLResponse:
        """A page, with the user, the CSRF token and the navigation."""
        session = session_of(request)
        page = self.templates.get_template(template).render(
            request=request, user=session.user, csrf=session.csrf, mlflow_url=self.mlflow_url,
            mlflow_run_url=self.mlflow_run_url, path=request.url.path, **context)
        return HTMLResponse(page, status_code=status_code)


def studio_of(request: Request) -> Studio:
    """The Studio serving this request."""
    return request.app.state.studio
