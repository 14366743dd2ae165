"""Step functions used by integration-test pipelines (imported by the step host process)."""
import os
import signal
import subprocess
import time


def write_output(inputs, params, output_dir, context):
    (output_dir / "out.txt").write_text("ok")
    return {"metrics": {"value": 1.0}, "outcome": "wrote output"}


def kill_self(inputs, params, output_dir, context):
    print("about to be killed", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def spawn_and_hang(inputs, params, output_dir, context):
    child = subprocess.Popen(["sleep", "300"])
    with open(params["pid_file"], "w") as handle:
        handle.write(str(child.pid))
    time.sleep(300)


def raise_error(inputs, params, output_dir, context):
    raise ValueError("the step found something wrong")


def report_parent(inputs, params, output_dir, context):
    (output_dir / "ppid").write_text(str(os.getppid()))
    return {"values": {"preloaded": "json" in __import__("sys").modules}}


def report_platform(inputs, params, output_dir, context):
    import platform

    os_release = open("/etc/os-release").read()
    pretty = next(line.split("=", 1)[1].strip('"') for line in os_release.splitlines() if line.startswith("PRETTY"))
    (output_dir / "platform.txt").write_text(f"{pretty}|{platform.python_version()}|{os.getuid()}")
    return {"values": {"ok": True}}


def read_platform(inputs, params, output_dir, context):
    return {"outcome": "platform " + (inputs["previous"] / "platform.txt").read_text()}


def probe_credential(inputs, params, output_dir, context):
    """A hostile step: records its environment and tries admin actions with the server credential it was given,
    into params["report"] (outside the run's artifacts); prints its password (the log must not keep it)."""
    import json

    from mlflow.exceptions import MlflowException

    from ml_service.workspace.auth_api import AuthApi

    api = AuthApi(context["tracking_uri"])
    me = os.environ.get("MLFLOW_TRACKING_USERNAME", "")
    attempts = {
        "create_user": lambda: api.create_user("intruder", "intruder-password-1"),
        "grant_self_manage": lambda: api.grant_user_permission(me, "registered_model", context["model_name"],
                                                               "MANAGE"),
        "make_self_admin": lambda: api.request("/api/2.0/mlflow/users/update-admin", "PATCH",
                                               json={"username": me, "is_admin": True}),
        "delete_admin": lambda: api.delete_user("admin"),
    }
    refused = {}
    for name, attempt in attempts.items():
        try:
            attempt()
            refused[name] = None
        except MlflowException as exc:
            refused[name] = exc.get_http_status_code()
    with open(f"/proc/{os.getpid()}/environ", "rb") as handle:
        initial = handle.read().decode(errors="replace")
    report = {"environ": dict(os.environ), "proc_environ": initial, "refused": refused}
    with open(params["report"], "w") as handle:
        json.dump(report, handle)
    print("my password is", os.environ.get("MLFLOW_TRACKING_PASSWORD", ""), flush=True)
    if params.get("then_sleep"):
        time.sleep(float(params["then_sleep"]))
    return {"values": {"user": me}}


def report_environment(inputs, params, output_dir, context):
    """Writes the step's environment to its outputs (env.json)."""
    import json

    (output_dir / "env.json").write_text(json.dumps(dict(os.environ)))


def read_state_secrets(inputs, params, output_dir, context):
    """A hostile step: fails when it can read any file under the state dir's secrets or team folders (the state
    dir itself must be there, or the step proves nothing)."""
    from pathlib import Path

    state = Path(context["state_dir"])
    if not state.is_dir():
        raise FileNotFoundError(f"the state dir {state} is not mounted")
    seen = [str(p) for folder in (state / "secrets", state / "team") if folder.is_dir()
            for p in folder.rglob("*") if p.is_file()]
    if seen:
        raise PermissionError(f"the step read {seen}")
