"""The team server's authorization function: MLflow's own basic auth, and a run's user is the user who created it.

MLflow stores a run's user (`run.info.user_id`, the `mlflow.user` tag) as the client sends it, so any user could
write runs in another's name. The team server names this module as its `authorization_function` (team/server.py):
MLflow calls it before every request, inside the request. After MLflow's basic auth has said who is asking:
- a run created (`runs/create`) gets the authenticated user as its user and `mlflow.user` tag, whatever the client
  sent, before the answer leaves the server (another name it sent is kept as the claim `mlops.claimed_user`);
- `mlflow.user` cannot be written or deleted afterwards (`runs/set-tag`, `runs/log-batch`, `runs/delete-tag`)
  except with the authenticated user's own name: 403.
It also answers `GET /api/2.0/mlops/users/password-stamp?username=NAME` for an admin: a digest of the user's stored
password hash, which changes when the password does (MLflow's API says nothing of it). The Studio keeps the stamp of
a login and ends the session when the stamp changes (team/login.py), so a changed password ends open sessions.
So the "written by a user who may write the project's experiment" check (workspace/provenance.py) reads a name the
server vouches for. The server process imports this module; it imports Flask and MLflow's server modules, which the
CLI never loads.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging

from ml_service.identity import CLAIMED_TAG  # where the platform keeps a claimed name beside the server user

USER_TAG = "mlflow.user"
_CREATE = "/mlflow/runs/create"
_TAG_WRITES = ("/mlflow/runs/set-tag", "/mlflow/runs/log-batch", "/mlflow/runs/delete-tag")
STAMP_PATH = "/api/2.0/mlops/users/password-stamp"
_log = logging.getLogger(__name__)


def authenticate():
    """MLflow's basic auth (an Authorization, or its 401 Response); a 403 Response for a forged run user."""
    from flask import after_this_request, g, request
    from mlflow.server.auth import authenticate_request_basic_auth

    result = authenticate_request_basic_auth()
    username = getattr(result, "username", None)
    if not username or getattr(g, "mlops_run_user_checked", False):  # MLflow asks again in validators
        return result
    g.mlops_run_user_checked = True
    path = request.path.rstrip("/")
    if request.method == "GET" and path == STAMP_PATH:
        return _password_stamp(username, request.args.get("username", ""))
    if request.method == "POST" and path.endswith(_CREATE):
        after_this_request(functools.partial(_own_run, username, _sent_user(_body(request))))
    elif path.endswith(_TAG_WRITES):
        forged = _forged_user_tag(_body(request), username, path.endswith("/delete-tag"))
        if forged:
            return _forbidden(forged)
    return result


def _password_stamp(asking: str, username: str):
    """The answer to STAMP_PATH: {"stamp": a digest of username's password hash} for an admin, else 403."""
    from flask import Response
    from mlflow.exceptions import MlflowException
    from mlflow.server.auth import store

    if not store.get_user(asking).is_admin:
        return _forbidden("only an admin may read a user's password stamp")
    try:
        user = store.get_user(username)
    except MlflowException:
        return _forbidden(f"no user {username!r}", 404, "RESOURCE_DOES_NOT_EXIST")
    stamp = hashlib.sha256(user.password_hash.encode()).hexdigest()[:32]
    return Response(json.dumps({"stamp": stamp}), status=200, mimetype="application/json")


def _body(request):
    """The request's JSON as MLflow's handlers will read it (any content type parsed, a double-encoded string
    decoded again): a check that read it otherwise could be passed by a body the handler still takes."""
    from mlflow.server.handlers import _get_normalized_request_json

    try:
        return _get_normalized_request_json(request)
    except Exception:  # the handler refuses this body too (wrong content type, not JSON)
        return None


def _sent_user(body) -> str:
    """The user a runs/create request names (its mlflow.user tag, else its user_id); '' when none."""
    if not isinstance(body, dict):
        return ""
    tags = body.get("tags") if isinstance(body.get("tags"), list) else []
    named = [t.get("value") for t in tags if isinstance(t, dict) and t.get("key") == USER_TAG]
    return str(named[0] if named else body.get("user_id") or "")


def _forged_user_tag(body, username: str, deleting: bool) -> str:
    """Why a tag write changes the run's user to someone else ('' when it does not)."""
    if not isinstance(body, dict):
        return ""
    tags = body.get("tags") if "tags" in body else [body]
    for tag in tags if isinstance(tags, list) else []:
        if isinstance(tag, dict) and tag.get("key") == USER_TAG:
            if deleting:
                return f"the tag {USER_TAG} names who created the run and cannot be deleted"
            if tag.get("value") != username:
                return f"the tag {USER_TAG} names who created the run: {username} may not set it to someone else"
    return ""


def _forbidden(message: str, status: int = 403, code: str = "PERMISSION_DENIED"):
    from flask import Response

    return Response(json.dumps({"error_code": code, "message": message}), status=status, mimetype="application/json")


def _own_run(username: str, sent: str, response):
    """After runs/create: the new run's user and mlflow.user tag are the authenticated user; the answer says so.
    Another name the client sent is kept as the tag mlops.claimed_user (a claim: `workspace migrate` copies a run
    with its first user's name). If that cannot be written, the run is deleted and the request fails (no run in
    someone else's name)."""
    if response.status_code != 200:
        return response
    run_id = ""
    try:
        data = json.loads(response.get_data())
        run_id = data["run"]["info"]["run_id"]
        _set_run_user(run_id, username, sent if sent and sent != username else "")
        data["run"]["info"]["user_id"] = username
        tags = [t for t in data["run"].get("data", {}).get("tags", []) if t.get("key") != USER_TAG]
        data["run"].setdefault("data", {})["tags"] = [*tags, {"key": USER_TAG, "value": username}]
        response.set_data(json.dumps(data))
    except Exception as exc:  # never a run that names a user who did not create it
        _log.error("run %s: cannot record its user %s: %s", run_id or "?", username, exc)
        if run_id:
            try:
                _tracking_store().delete_run(run_id)
            except Exception:  # pragma: no cover - the store failed twice; the error below still stands
                pass
        return _forbidden(f"the run could not be recorded as {username}'s: {type(exc).__name__}", 500, "INTERNAL_ERROR")
    return response


def _tracking_store():
    from mlflow.server.handlers import _get_tracking_store

    return _get_tracking_store()


def _set_run_user(run_id: str, username: str, claimed: str = "") -> None:
    """user_id (the runs table) and the mlflow.user tag of run_id, in the server's own store; claimed, if given,
    as mlops.claimed_user unless the client set that tag itself."""
    from mlflow.entities import RunTag
    from mlflow.store.tracking.dbmodels.models import SqlRun

    store = _tracking_store()
    with store.ManagedSessionMaker() as session:
        updated = session.query(SqlRun).filter(SqlRun.run_uuid == run_id).update({"user_id": username})
        if updated != 1:
            raise LookupError(f"run {run_id} not found")
    store.set_tag(run_id, RunTag(USER_TAG, username))
    if claimed and CLAIMED_TAG not in store.get_run(run_id).data.tags:
        store.set_tag(run_id, RunTag(CLAIMED_TAG, claimed))
