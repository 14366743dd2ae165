"""`mlops ci ...`: run pipelines locally, list and inspect runs, approvals, git hooks."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from ml_service.ci.runner import terminal
from ml_service.ci.runner.progress import Progress, summary


def _settings(args):
    """The settings of a `mlops ci` command (--project selects the model project)."""
    from ml_service.cli.support import command_settings

    return command_settings(args)


def _store(settings):
    from ml_service.ci.server.service import open_store

    return open_store(settings)


def cmd_run(args) -> int:
    """Queue a pipeline and run it here, then what its completion triggers."""
    from ml_service.ci.server import service

    settings = _settings(args)
    store = _store(settings)
    file = service.resolve_file(settings, args.pipeline)
    params = dict(service.parse_param(p) for p in args.param)
    run_id = service.queue(settings, store, file, args.reason, params)
    run = store.get_run(run_id)
    print(f"run {run_id}: {run.pipeline} ({run.reason}) on {run.branch or '-'}@{run.commit_sha[:8] or '-'}")
    ran = service.execute(settings, store, run_id, Progress(), chain=not args.no_triggers)
    return summary(store, ran)


def cmd_list(args) -> int:
    """Recent runs."""
    store = _store(_settings(args))
    runs = store.list_runs(args.limit)
    if not runs:
        print("no runs yet (mlops ci run build)")
        return 0
    width = max(10, *(len(run.pipeline) for run in runs))
    print(f"{'RUN':>5}  {'PIPELINE':<{width}} {'REASON':<16} {'BRANCH':<14} {'COMMIT':<8}  {'STATUS':<10} "
          f"{'RESULT':<20} {'QUEUED':<19}  TOOK")
    for run in runs:
        took = f"{run.finished - run.started:.0f}s" if run.finished and run.started else ""
        queued = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.created))
        print(f"{run.id:>5}  {run.pipeline:<{width}} {run.reason:<16} {run.branch[:14]:<14} {run.commit_sha[:8]:<8}  "
              f"{run.status:<10} {run.result:<20} {queued:<19}  {took}")
    return 0


def _quiet(func):
    """func that ends quietly (exit 0) when its reader goes away (`mlops ci logs | head`)."""
    def run(args) -> int:
        return terminal.quiet_broken_pipe(lambda: func(args))
    run.__doc__ = func.__doc__
    return run


def _clean(text: str, args) -> str:
    """text for the terminal: a step's control sequences escaped unless --raw (issue 24 finding 7)."""
    return text if getattr(args, "raw", False) else terminal.sanitize(text)


def cmd_show(args) -> int:
    """A run with every stage, job and step."""
    def say(text: str) -> None:
        print(_clean(text, args))

    store = _store(_settings(args))
    run = store.get_run(args.run)
    proven = f" (proven: {run.requested_proof})" if run.requested_proof else ""
    say(f"run {run.id}: {run.pipeline} ({run.file})\n  reason {run.reason}, branch {run.branch}, "
        f"commit {run.commit_sha}, requested by {run.requested_by}{proven}\n  status {run.status} {run.result}")
    checkout = (run.state or {}).get("checkout")
    if checkout:  # what the steps' checkout held: the commit, or the commit plus the uncommitted changes
        from ml_service.ci.runner.sources import summary as sources_summary

        say(f"  sources {sources_summary(checkout)}")
    if run.resources:
        for alias, resource in run.resources.items():
            say(f"  resource {alias}: {resource['pipelineName']} run {resource['runID']}")
    for record in store.records(run.id):
        depth = record["path"].count("/")
        took = f"{record['finished'] - record['started']:.1f}s" if record["finished"] and record["started"] else ""
        status = record["result"] or record["status"]
        detail = f"  {record['detail']}" if record["detail"] else ""
        say(f"  {'  ' * depth}{record['display'] or record['name']}: {status} {took}{detail}")
    for approval in store.approvals(run.id):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(approval["decided"] or approval["requested"]))
        proof = f" ({approval['approver_proof']})" if approval.get("approver_proof") else ""
        what = f"manual validation {approval['step']}" if approval.get("kind") == "validation" else \
            f"approval of stage {approval['stage']} ({approval['environment']})"
        say(f"  {what}: {approval['status']} "
            f"{approval['approver'] or ''}{proof} {when} {approval['comment'] or ''}".rstrip())
    artifacts = store.artifacts_dir(run.id)
    if artifacts.is_dir():
        say(f"  artifacts: {', '.join(sorted(p.name for p in artifacts.iterdir()))} ({artifacts})")
    return 0


def cmd_logs(args) -> int:
    """Logs of a run (every step, or the steps whose name or display name contains --step)."""
    store = _store(_settings(args))
    if args.run is None:
        runs = store.list_runs(1)
        if not runs:
            print("no runs yet", file=sys.stderr)
            return 1
        args.run = runs[0].id
    shown = 0
    for record in store.records(args.run):
        if record["kind"] != "step" or not record["log"]:
            continue
        names = f"{record['name']} {record['display']}".lower()
        if args.step and args.step.lower() not in names:
            continue
        header = f"===== {record['path']} {record['display']} ({record['result'] or record['status']})"
        print(header if getattr(args, "raw", False) else terminal.sanitize(header))
        path = Path(record["log"])
        if path.exists():  # streamed in bounded chunks; control sequences shown escaped unless --raw
            terminal.stream(path, sys.stdout, raw=getattr(args, "raw", False))
        else:
            print("(no output)", end="")
        shown += 1
    if not shown:
        print("no matching step logs", file=sys.stderr)
        return 1
    return 0


def cmd_rerun(args) -> int:
    """Queue the same pipeline again with the same source, parameters and resources."""
    from ml_service.ci.server import service

    settings = _settings(args)
    store = _store(settings)
    old = store.get_run(args.run)
    run_id = service.queue(settings, store, Path(old.file), f"Manual (rerun of {old.id})", old.params,
                           Path(old.source_dir), old.branch, old.commit_sha, old.resources, old.triggered_by,
                           checkout=(old.state or {}).get("checkout"))  # the same sources (a snapshot too)
    print(f"run {run_id}: rerun of {old.id} ({old.pipeline})")
    return summary(store, service.execute(settings, store, run_id, Progress()))


def cmd_cancel(args) -> int:
    """Cancel a run."""
    from ml_service.ci.server import service

    print(f"run {args.run}: {service.cancel(_store(_settings(args)), args.run)}")
    return 0


def cmd_pending(args) -> int:
    """Runs waiting for an approval."""
    store = _store(_settings(args))
    pending = store.approvals(status="pending")
    if not pending:
        print("nothing waits for approval")
        return 0
    for approval in pending:
        run = store.get_run(approval["run_id"])
        left = max(0, approval["timeout_at"] - time.time()) / 60
        if approval.get("kind") == "validation":  # a ManualValidation step (its instructions, whom to notify)
            print(f"run {run.id} ({run.pipeline}) manual validation {approval['step']}"
                  + (f" (approvers: {approval['approvers']})" if approval.get("approvers") else "")
                  + (f": {approval['instructions']}" if approval.get("instructions") else "")
                  + (f"; notify {approval['notify']}" if approval.get("notify") else "")
                  + f"; on timeout ({left:.0f} min) {approval['on_timeout']}: mlops ci approve|reject {run.id}")
            continue
        print(f"run {run.id} ({run.pipeline}) stage {approval['stage']} -> environment {approval['environment']}, "
              f"requested by {run.requested_by}, times out in {left:.0f} min: mlops ci approve {run.id}")
    return 0


def cmd_decide(args) -> int:
    """Approve (and resume) or reject a waiting run."""
    from ml_service.ci.server import approvals, service

    settings = _settings(args)
    store = _store(settings)
    approve = args.action == "approve"
    if args.run is None:
        pending = store.approvals(status="pending")
        if not pending:
            print("nothing waits for approval")
            return 0
        args.run = pending[-1]["run_id"]
    approval = approvals.decide(settings, store, args.run, approve, args.comment, args.stage)
    verb = "approved" if approve else "rejected"
    print(f"run {args.run}: stage {approval['stage']} {verb} by {approval['approver']} ({approval['proof']})")
    if not approve and approval.get("kind") != "validation":  # a rejected ManualValidation: the run goes on
        return 0
    return summary(store, service.execute(settings, store, args.run, Progress()))


def cmd_hooks_install(args) -> int:
    """Install the git hook that runs pipelines on `git push`."""
    from ml_service.ci.server import hooks

    repo = hooks.install(_settings(args), Path(args.remote) if args.remote else None)
    print(f"post-receive hook installed in {repo}; remote 'mlops' points there.\n"
          f"  git push mlops main   # runs the pipelines whose triggers match, in the background")
    return 0


def cmd_on_push(args) -> int:
    """Called by the post-receive hook."""
    from ml_service.ci.server import hooks

    hooks.on_push(_settings(args), Path(args.repo), args.updates)
    return 0


def cmd_scaffold(args) -> int:
    """Write the selected model project's three pipeline files (<project>-build, -retrain, -release)."""
    from ml_service.ci import scaffold

    settings = _settings(args)
    try:
        written = scaffold.write_model_pipelines(settings.root, overwrite=args.overwrite,
                                                 **scaffold.project_arguments(settings.model, settings.root))
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path.relative_to(settings.root)}")
    return 0


def cmd_token(args) -> int:
    """Personal tokens that prove an approver's identity (MLOPS_TOKEN)."""
    from ml_service.ci.server import identity

    settings = _settings(args)
    if args.token_action == "create":
        name, token = identity.create_token(settings, args.name)
        print(f"token for {name} (shown once; only its hash is kept; present it as MLOPS_TOKEN):\n{token}")
    elif args.token_action == "list":
        tokens = identity.list_tokens(settings)
        for entry in tokens:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry["created"] or 0))
            print(f"{entry['name']}  created {when} by {entry['created_by']}")
        if not tokens:
            print("no tokens (mlops ci token create)")
    else:
        print(f"revoked {identity.revoke_tokens(settings, args.name)} token(s) of {args.name}")
    return 0


def cmd_lint(args) -> int:
    """Report untrusted values spliced into scripts; non-zero exit when there is any."""
    from ml_service.ci.model import lint

    files = [Path(f) for f in args.files] or lint.default_files(_settings(args).root)
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        print(f"error: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    findings, errors = lint.lint_files(files)
    for line in [*errors, *map(str, findings)]:
        print(line)
    if findings or errors:
        print(f"{len(findings)} finding(s), {len(errors)} unreadable file(s) in {len(files)} file(s)", file=sys.stderr)
        return 1
    print(f"no untrusted value spliced into a script ({len(files)} file(s))")
    return 0


def add_commands(groups) -> None:
    """Register `mlops ci` and its actions on the top-level parser."""
    ci = groups.add_parser("ci", help="run the .pipelines/ YAML locally: runs, approvals, git hooks")
    sub = ci.add_subparsers(dest="action", metavar="ACTION", required=True)
    run = sub.add_parser("run", help="run a pipeline (name or file) here, then what its completion triggers")
    run.add_argument("pipeline", help="a pipeline name (<project>-build, pr ...) or YAML file; build, retrain or "
                                      "release: that pipeline of the selected model (MLOPS_MODEL, else the first)")
    run.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="a pipeline parameter")
    run.add_argument("--reason", default="Manual", help="Build.Reason (default: %(default)s)")
    run.add_argument("--no-triggers", action="store_true", help="do not run completion-triggered pipelines")
    run.set_defaults(func=cmd_run)
    lst = sub.add_parser("list", help="recent runs")
    lst.add_argument("--limit", type=int, default=30, help="how many (default: %(default)s)")
    lst.set_defaults(func=cmd_list)
    for name, func, text in (("show", cmd_show, "a run with its stages, jobs, steps and approvals"),
                             ("rerun", cmd_rerun, "run a run's pipeline again, same source and parameters"),
                             ("cancel", cmd_cancel, "cancel a queued, running or waiting run")):
        parser = sub.add_parser(name, help=text)
        parser.add_argument("run", type=int)
        if name == "show":
            parser.add_argument("--raw", action="store_true", help="print control sequences as they are")
            func = _quiet(cmd_show)
        parser.set_defaults(func=func)
    logs = sub.add_parser("logs", help="step logs of a run (secrets masked; terminal control sequences shown "
                                       "escaped unless --raw)")
    logs.add_argument("run", type=int, nargs="?", help="run id (default: the newest run)")
    logs.add_argument("--step", help="only steps whose name contains this")
    logs.add_argument("--raw", action="store_true", help="print the logs' bytes as they are")
    logs.set_defaults(func=_quiet(cmd_logs))
    pending = sub.add_parser("pending", help="runs waiting for approval")
    pending.set_defaults(func=cmd_pending)
    for name in ("approve", "reject"):
        parser = sub.add_parser(name, help=f"{name} a run waiting on an environment (proof of an approver: "
                                           "MLOPS_TOKEN, else the OS account; MLOPS_USER is only a claim)")
        parser.add_argument("run", type=int, nargs="?", help="run id (default: the newest waiting run)")
        parser.add_argument("--stage", help="the waiting stage (default: the first one)")
        parser.add_argument("--comment", default="", help="recorded with the decision")
        parser.set_defaults(func=cmd_decide, action=name)
    hooks = sub.add_parser("hooks", help="git hooks")
    hooks_sub = hooks.add_subparsers(dest="hooks_action", metavar="ACTION", required=True)
    install = hooks_sub.add_parser("install", help="bare remote + post-receive hook: `git push mlops` runs pipelines")
    install.add_argument("--remote", help="an existing bare repository to use (default: .mlops/ci/remote.git)")
    install.set_defaults(func=cmd_hooks_install)
    token = sub.add_parser("token", help="personal tokens that prove an approver's identity (MLOPS_TOKEN)")
    token_sub = token.add_subparsers(dest="token_action", metavar="ACTION", required=True)
    create = token_sub.add_parser("create", help="make a token and print it once (only its hash is kept)")
    create.add_argument("--name", default="", help="the identity it proves, as approvers list it (default: the OS "
                                                   "account; in team mode a server user, default this checkout's)")
    token_sub.add_parser("list", help="tokens by name (never the tokens)")
    revoke = token_sub.add_parser("revoke", help="remove every token of a name")
    revoke.add_argument("name")
    token.set_defaults(func=cmd_token)
    lint = sub.add_parser("lint", help="find untrusted values (branch, parameters, runtime variables) spliced "
                                       "into step scripts; exit 1 when there is any")
    lint.add_argument("files", nargs="*", help="pipeline or template files (default: every .pipelines/ YAML file)")
    lint.set_defaults(func=cmd_lint)
    scaffold = sub.add_parser("scaffold", help="write the selected model project's pipeline files "
                                               "(.pipelines/<project>-build|-retrain|-release.yml)")
    scaffold.add_argument("--overwrite", action="store_true", help="replace files that exist")
    scaffold.set_defaults(func=cmd_scaffold)
    from ml_service.cli import ci_expand
    from ml_service.cli import ci_schedule as schedule_commands

    schedule_commands.add_commands(sub)
    ci_expand.add_commands(sub)
    on_push = sub.add_parser("on-push", help=argparse_suppress())
    on_push.add_argument("--repo", required=True)
    on_push.add_argument("--updates", required=True)
    on_push.set_defaults(func=cmd_on_push)


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS
