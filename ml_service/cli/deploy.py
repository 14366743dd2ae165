"""`mlops deploy ...`: releases to QA and production, canaries, what runs where."""
from __future__ import annotations

import json

from ml_service.cli.options import MODEL_NAME, MODEL_VERSION
from ml_service.cli.support import command_settings, registered_name

EXIT_OUT_OF_SYNC = 3
PRODUCTION_MODEL = "registered model name or project (default: the selected project)"


def cmd_deploy_qa(args) -> int:
    """Deploy a registered model version to QA (one Docker container)."""
    from ml_service.deploy.qa import deploy_qa

    deployment = deploy_qa(command_settings(args, registered_name(args.model)), args.model, timeout_s=args.timeout)
    print(f"QA now serves {deployment.model_name} version {deployment.version} at {deployment.url} "
          f"(container {deployment.target}); alias 'qa' moved")
    return 0


def cmd_deploy_prod(args) -> int:
    """Deploy a registered model version to production (GitOps desired state on these machines), or run it as
    the canary with --canary PERCENT."""
    from ml_service.ci.server.service import identity

    settings = command_settings(args, registered_name(args.model))
    if args.canary is not None:
        from ml_service.deploy.canary import start_canary

        result = start_canary(settings, args.model, args.canary, identity(settings), smoke_timeout=args.smoke_timeout)
    else:
        from ml_service.deploy.production import deploy_prod

        result = deploy_prod(settings, args.model, identity(settings), smoke_timeout=args.smoke_timeout)
    print(result.message)
    return 0


def _production_model(args, settings) -> str:
    """The registered model a production command acts on: --model (name or project), else the selected one."""
    if not args.model:
        return settings.model_name
    for model in settings.models:
        if args.model in (model.name, model.project):
            return model.name
    return args.model


def cmd_deploy_promote(args) -> int:
    """Move all production traffic to the canary's version and remove the canary."""
    from ml_service.ci.server.service import identity
    from ml_service.deploy.canary import promote

    settings = command_settings(args)
    name = _production_model(args, settings)
    settings = settings.for_registered(name)
    print(promote(settings, name, identity(settings), smoke_timeout=args.smoke_timeout).message)
    return 0


def cmd_deploy_abort(args) -> int:
    """Send all production traffic back to the stable release and remove the canary."""
    from ml_service.ci.server.service import identity
    from ml_service.deploy.canary import abort

    settings = command_settings(args)
    name = _production_model(args, settings)
    settings = settings.for_registered(name)
    print(abort(settings, name, identity(settings)).message)
    return 0


def cmd_deploy_status(args) -> int:
    """What production should run and what it is known to run, for every model (or one)."""
    from ml_service.deploy import prod_status

    settings = command_settings(args)
    names = [_production_model(args, settings)] if args.model else [m.name for m in settings.models]
    rows = prod_status.production_status(settings, names)
    print(json.dumps(rows, indent=2) if args.json else prod_status.render(rows))
    return 0


def percent(text: str) -> int:
    """--canary PERCENT: an integer from 1 to 100."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole percent (1-100)") from None
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"{value} is not a percent from 1 to 100 (0 is `mlops deploy abort`)")
    return value


def cmd_deploy_list(args) -> int:
    """Show what runs where, for every model (as a table, or JSON for scripts)."""
    from ml_service.deploy import records

    from ml_service.deploy.status import checked

    rows = records.list_deployments(command_settings(args))
    if not args.all:
        rows = records.current_rows(rows)
    rows = checked(rows)  # a live container is checked against the engine: removed or stopped ones say so
    if args.json:
        print(json.dumps([{"model": d.model_name, "version": d.version, "environment": d.environment,
                           "track": d.track, "status": status, "url": d.url, "image": d.image, "mode": d.mode,
                           "target": d.target, "since": records.iso_time(d.time)} for d, status in rows], indent=2))
        return 0
    if not rows:
        print("nothing deployed yet")
        return 0
    print(f"{'MODEL':<28} {'ENVIRONMENT':<17} {'VERSION':>7}  {'STATUS':<16} {'MODE':<8} {'SINCE':<19}  "
          f"{'URL / TARGET':<30} IMAGE")
    for d, status in rows:
        where = d.url or d.target
        environment = d.environment + (" canary" if d.track != records.STABLE else "")
        print(f"{d.model_name:<28} {environment:<17} {d.version:>7}  {status:<16} {d.mode:<8} "
              f"{records.format_time(d.time):<19}  {where:<30} {d.image}")
    return 0


def cmd_deploy_check(args) -> int:
    """Does the environment really serve the selected model's champion? Exit 0 if so, 3 if not."""
    from ml_service.deploy.status import environment_state

    state = environment_state(command_settings(args), args.environment)
    if args.json:
        print(json.dumps(state.as_dict()))
    elif state.champion is None:
        print(f"{state.model}: no champion yet; {args.environment}: {state.detail}")
    else:
        verdict = "serves the champion" if state.in_sync else "does NOT serve the champion"
        print(f"{args.environment} {verdict} {state.model}:{state.champion} ({state.detail})")
    return 0 if state.in_sync else EXIT_OUT_OF_SYNC


def add_commands(groups) -> None:
    """Register `mlops deploy` and its actions."""
    deploy = groups.add_parser("deploy", help="deploy model versions and list deployments")
    dep_sub = deploy.add_subparsers(dest="action", metavar="ACTION", required=True)
    qa = dep_sub.add_parser("qa", help="deploy to QA: one Docker container on 127.0.0.1")
    MODEL_VERSION.add(qa, required=True)
    qa.add_argument("--timeout", type=float, default=120, help="seconds to wait for readiness (default: 120)")
    qa.set_defaults(func=cmd_deploy_qa)
    prod = dep_sub.add_parser("prod", help="deploy to production (on a machine without a cluster: commit the "
                                           "desired state to the GitOps target, apply nothing)")
    MODEL_VERSION.add(prod, required=True)
    prod.add_argument("--smoke-timeout", type=float, default=120, help="seconds for the smoke test (default: 120)")
    prod.add_argument("--canary", type=percent, metavar="PERCENT",
                      help="run the version as the canary beside the stable release, with PERCENT of the traffic "
                           "(the Gateway API route's weights); then `deploy promote` or `deploy abort`")
    prod.set_defaults(func=cmd_deploy_prod)
    promote = dep_sub.add_parser("promote", help="production: all traffic to the canary's version, canary removed")
    MODEL_NAME.add(promote, help=PRODUCTION_MODEL)
    promote.add_argument("--smoke-timeout", type=float, default=120,
                         help="seconds for the smoke test on a cluster (default: 120)")
    promote.set_defaults(func=cmd_deploy_promote)
    abort = dep_sub.add_parser("abort", help="production: all traffic back to the stable release, canary removed")
    MODEL_NAME.add(abort, help=PRODUCTION_MODEL)
    abort.set_defaults(func=cmd_deploy_abort)
    status = dep_sub.add_parser("status", help="production: desired state (GitOps target) vs what a cluster runs")
    status.add_argument("environment", choices=["production"],
                        help="production (QA: `mlops deploy check qa`, `mlops deploy list`)")
    MODEL_NAME.add(status, help="one model (registered name or project); default: every model")
    status.add_argument("--json", action="store_true", help="JSON for scripts: desired, observed, in_sync, records")
    status.set_defaults(func=cmd_deploy_status)
    dlist = dep_sub.add_parser("list", help="what runs where (every model)")
    dlist.add_argument("--all", action="store_true", help="every deployment, not just the current ones")
    dlist.add_argument("--json", action="store_true", help="JSON for scripts: model, version, environment, "
                                                           "status, url, image, mode, target, since")
    dlist.set_defaults(func=cmd_deploy_list)
    check = dep_sub.add_parser("check", help="does an environment really serve the champion? (exit 0: yes, "
                                             "3: no; releases use it to converge)")
    check.add_argument("environment", help="qa (production's state is checked by its own deploy)")
    check.add_argument("--json", action="store_true", help="champion, live version, in_sync and the ref to release")
    check.set_defaults(func=cmd_deploy_check)
