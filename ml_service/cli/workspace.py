"""`mlops workspace ...`: the team workspace (up, down, status, use), its users, migrate, backup, restore."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ml_service.cli.options import MODEL_NAME
from ml_service.cli.support import CommandError, command_settings


def cmd_up(args) -> int:
    """Start the team workspace on this machine and point this checkout at it."""
    from ml_service.team import server as team

    state = team.up(command_settings(args), workers=args.workers)
    secrets = team.paths(command_settings(args)).secrets
    print(f"team workspace up: MLflow server {state['tracking_uri']} on PostgreSQL 127.0.0.1:{state['pg_port']}, "
          f"artifacts in {state['artifacts']}")
    print(f"this checkout now uses it as '{team.ADMIN}' (password in {secrets}/admin_password); "
          "`mlops workspace use embedded` points back")
    return 0


def cmd_down(args) -> int:
    """Stop the team workspace's MLflow server and PostgreSQL (data kept)."""
    from ml_service.team import server as team

    stopped = team.down(command_settings(args))
    print("stopped: " + "; ".join(stopped) if stopped else "nothing was running")
    return 0


def cmd_status(args) -> int:
    """What this checkout's workspace is and whether it answers."""
    from ml_service.team import server as team

    report = team.status(command_settings(args))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        auth = {True: ", credentials accepted", False: ", credentials REFUSED", None: ""}[report["authenticated"]]
        print(f"{report['tracking_uri']} ({report['backend']}): "
              f"{'answers' if report['answers'] else 'does NOT answer'}{auth}")
        if report["user"]:
            print(f"user: {report['user']}")
    return 0 if report["answers"] else 3


def cmd_use(args) -> int:
    """Point this checkout at the embedded workspace, this machine's team server, or an MLflow server URL."""
    from ml_service.team import server as team

    settings = command_settings(args)
    if args.target == "embedded":
        removed = team.use_embedded(settings)
        print("this checkout uses the embedded workspace" + ("" if removed else " (it already did)"))
        return 0
    if args.target == "team":
        state = team.read_state(team.paths(settings))
        if not state.get("tracking_uri"):
            raise CommandError("no team workspace was started from this checkout: run `mlops workspace up`")
        team.point_at(settings, state["tracking_uri"], team.ADMIN, team.paths(settings).secret("admin_password"),
                      backend="postgresql")
        print(f"this checkout uses {state['tracking_uri']}")
        return 0
    password = ""
    if args.username:
        if not args.password_file:
            raise CommandError("--username needs --password-file FILE (or - to read it from stdin)")
        source = sys.stdin if args.password_file == "-" else None
        try:
            password = (source.read() if source else Path(args.password_file).read_text()).strip()
        except OSError as exc:
            raise CommandError(f"cannot read --password-file {args.password_file}: {exc.strerror}") from None
        if not password:
            raise CommandError(f"--password-file {args.password_file} is empty")
    target = team.use_server(settings, args.target, args.username or "", password)
    print(f"this checkout uses {args.target}" + (f" as {args.username}" if args.username else "") + f" ({target})")
    return 0


def cmd_user_add(args) -> int:
    """Create a server user with a generated password (kept in a 0600 file, never printed)."""
    from ml_service.team import users

    path = users.add_user(command_settings(args), args.username)
    print(f"created user {args.username}; password in {path} (give it to them: "
          f"`mlops workspace use URL --username {args.username} --password-file FILE`)")
    return 0


def cmd_grant(args) -> int:
    """Set a user's permission on a registered model or an experiment."""
    from ml_service.team import users

    print(users.grant(command_settings(args), args.username, args.permission, args.model or "", args.experiment or ""))
    return 0


def cmd_migrate(args) -> int:
    """Copy the embedded workspace into an MLflow server."""
    from ml_service.team import migrate

    counts = migrate.migrate(command_settings(args), args.to, dry_run=args.dry_run, source=args.source or "")
    verb = "would copy" if args.dry_run else "copied"
    print(f"{verb}: " + ", ".join(f"{n} {what}" for what, n in counts.items()))
    return 0


def cmd_backup(args) -> int:
    """Back up the team workspace (pg_dump of both databases + artifacts) into DIR."""
    from ml_service.team import backup

    manifest = backup.backup(command_settings(args), Path(args.dir))
    print(f"backed up to {args.dir}: {manifest['artifact_files']} artifact files, databases "
          + ", ".join(manifest["databases"]))
    return 0


def cmd_restore(args) -> int:
    """Restore a backup into this checkout's team workspace (started if needed)."""
    from ml_service.team import backup

    state = backup.restore(command_settings(args), Path(args.dir))
    print(f"restored {args.dir} into the team workspace at {state['tracking_uri']}")
    return 0


def add_commands(groups) -> None:
    """Register `mlops workspace`."""
    ws = groups.add_parser("workspace", help="the team workspace: MLflow server on PostgreSQL, users, migrate, backup")
    sub = ws.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = sub.add_parser("up", help="start PostgreSQL + the MLflow server (basic auth) here and use it")
    up.add_argument("--workers", type=int, default=2, help="MLflow server workers (default: %(default)s)")
    up.set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop the team workspace (its data stays)").set_defaults(func=cmd_down)
    status = sub.add_parser("status", help="tracking URI, backend (postgresql|sqlite), whether it answers")
    status.add_argument("--json", action="store_true", help="machine-readable")
    status.set_defaults(func=cmd_status)
    use = sub.add_parser("use", help="point this checkout at: embedded | team | an MLflow server URL")
    use.add_argument("target", help="embedded, team (this machine's `workspace up`), or http(s)://HOST:PORT")
    use.add_argument("--username", help="the server user of this checkout")
    use.add_argument("--password-file", help="a file holding the user's password (- for stdin)")
    use.set_defaults(func=cmd_use)
    user = sub.add_parser("user", help="server users (admin only)")
    user_sub = user.add_subparsers(dest="user_action", metavar="ACTION", required=True)
    add = user_sub.add_parser("add", help="create a user with a generated password (kept in a 0600 file)")
    add.add_argument("username")
    add.set_defaults(func=cmd_user_add)
    grant = sub.add_parser("grant", help="a user's permission on a registered model or experiment")
    grant.add_argument("username")
    grant.add_argument("permission", help="READ, USE, EDIT, MANAGE or NO_PERMISSIONS")
    MODEL_NAME.add(grant)
    grant.add_argument("--experiment", help="experiment name")
    grant.set_defaults(func=cmd_grant)
    migrate = sub.add_parser("migrate", help="copy the embedded workspace (runs, artifacts, models, aliases) "
                             "into an MLflow server")
    migrate.add_argument("--to", required=True, metavar="URI", help="the MLflow server (http://HOST:PORT)")
    migrate.add_argument("--from", dest="source", metavar="URI", help="default: this checkout's embedded sqlite store")
    migrate.add_argument("--dry-run", action="store_true", help="count what would move; write nothing")
    migrate.set_defaults(func=cmd_migrate)
    backup = sub.add_parser("backup", help="pg_dump + artifacts of the team workspace into DIR")
    backup.add_argument("dir")
    backup.set_defaults(func=cmd_backup)
    restore = sub.add_parser("restore", help="restore a backup DIR into this checkout's team workspace")
    restore.add_argument("dir")
    restore.set_defaults(func=cmd_restore)
