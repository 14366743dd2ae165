"""`mlops studio`: serve the Studio on 127.0.0.1; `mlops studio user add|list|remove`: its local users."""
from __future__ import annotations

import sys

from ml_service.cli.support import CommandError, command_settings

DEFAULT_PORT = 8800
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def mlflow_address(settings, port: int) -> str:
    """Where the Studio links the MLflow UI: the team's MLflow server, else `mlops ui` on port."""
    if settings.tracking_uri.startswith(("http://", "https://")):
        return settings.tracking_uri
    return f"http://127.0.0.1:{port}"


def _check_free(host: str, port: int) -> None:
    """CommandError when the address cannot be listened on (in use, or not this machine's)."""
    import socket

    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise CommandError(f"cannot listen on {host}:{port} ({exc.strerror}): choose another --port or --host")
    except OverflowError:
        raise CommandError(f"--port {port} is not a port number (1-65535)") from None


def cmd_studio(args) -> int:
    """Serve the Studio (and, with --mlflow-ui, the MLflow UI beside it)."""
    import signal
    import subprocess
    import threading

    import uvicorn

    from ml_service.processes import kill_group
    from ml_service.studio import logins, users
    from ml_service.studio.app import create_app

    import os

    settings = command_settings(args)
    _check_free(args.host, args.port)
    # A team MLflow server that does not answer fails a page in seconds, not after minutes of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    mlflow_url = args.mlflow_url or mlflow_address(settings, args.mlflow_port)
    app = create_app(settings, mlflow_url)
    if args.mlflow_ui:  # the workspace's store exists before `mlops ui` opens it (no two migrations at once)
        app.state.studio.client()
    else:
        threading.Thread(target=app.state.studio.client, daemon=True).start()  # import MLflow before a page needs it
    if args.host not in LOOPBACK:
        print(f"warning: serving on {args.host}: put the Studio behind a TLS reverse proxy", file=sys.stderr)
    if logins.team_server(settings):
        print(f"logins: the users of the team workspace's MLflow server {settings.tracking_uri} "
              "(mlops workspace user add NAME); the Studio's own users are not used", file=sys.stderr)
    elif not users.list_users(settings.state_dir):
        print("no Studio users yet: mlops studio user add NAME --password-stdin", file=sys.stderr)
    child = None
    if args.mlflow_ui:
        child = subprocess.Popen([sys.executable, "-m", "ml_service.cli", "ui", "--port", str(args.mlflow_port)],
                                 start_new_session=True, stdout=subprocess.DEVNULL)
    print(f"Studio on http://{args.host}:{args.port} (MLflow UI: {mlflow_url}; Ctrl-C to stop)", flush=True)
    # uvicorn re-raises SIGTERM once it has shut down: make that an exit, so the MLflow UI stops with us.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=5,
                    **app.state.server_options)  # X-Forwarded-For only from configured proxies
    finally:
        if child is not None:
            kill_group(child.pid)
            child.wait()
    return 0


def not_in_team_mode(settings) -> None:
    """CommandError when the Studio's logins are the team server's users (its own users are not used then)."""
    from ml_service.studio import logins

    if logins.team_server(settings):
        raise CommandError(f"this checkout uses the team workspace {settings.tracking_uri}: its users log in to the "
                           "Studio with their server password; an admin adds one with `mlops workspace user add "
                           "NAME` (`mlops workspace use embedded` to manage the Studio's own users)")


def cmd_user_add(args) -> int:
    """Add a user (or change a password); the password comes from stdin, never the command line."""
    from ml_service.studio import users

    settings = command_settings(args)
    not_in_team_mode(settings)
    if not args.password_stdin:
        raise CommandError("give the password on stdin: echo \"$PASSWORD\" | mlops studio user add NAME "
                           "--password-stdin")
    password = sys.stdin.readline().rstrip("\r\n")
    new = users.add_user(settings.state_dir, args.name, password)
    print(f"{'added' if new else 'changed the password of'} Studio user {args.name}")
    return 0


def cmd_user_list(args) -> int:
    """List the Studio's users."""
    from ml_service.studio import users

    settings = command_settings(args)
    not_in_team_mode(settings)
    names = users.list_users(settings.state_dir)
    print("\n".join(names) if names else "no Studio users (mlops studio user add NAME --password-stdin)")
    return 0


def cmd_user_remove(args) -> int:
    """Remove a user."""
    from ml_service.studio import users

    users.remove_user(command_settings(args).state_dir, args.name)
    print(f"removed Studio user {args.name}")
    return 0


def add_commands(groups) -> None:
    """Register `mlops studio`."""
    studio = groups.add_parser("studio", help="web pages for pipeline runs, ML runs, models, approvals and "
                                              "deployments (127.0.0.1)")
    studio.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    studio.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default: %(default)s)")
    studio.add_argument("--mlflow-url", help="the MLflow UI to link to (default: the tracking server, else "
                                             "`mlops ui` on --mlflow-port)")
    studio.add_argument("--mlflow-port", type=int, default=5000, help="port of `mlops ui` (default: %(default)s)")
    studio.add_argument("--mlflow-ui", action="store_true", help="also start `mlops ui` on --mlflow-port")
    studio.set_defaults(func=cmd_studio)
    sub = studio.add_subparsers(dest="studio_action", metavar="ACTION")
    user = sub.add_parser("user", help="the Studio's local users (hashed passwords in the workspace)")
    user_sub = user.add_subparsers(dest="user_action", metavar="ACTION", required=True)
    add = user_sub.add_parser("add", help="add a user or change its password (read from stdin)")
    add.add_argument("name", help="the identity approvals are recorded under (as listed in mlops.yml approvers)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin (required)")
    add.set_defaults(func=cmd_user_add)
    lst = user_sub.add_parser("list", help="list users")
    lst.set_defaults(func=cmd_user_list)
    remove = user_sub.add_parser("remove", help="remove a user")
    remove.add_argument("name")
    remove.set_defaults(func=cmd_user_remove)
