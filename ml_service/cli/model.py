"""`mlops model ...`: model projects and registered models."""
from __future__ import annotations

import time

from ml_service.cli.support import CommandError, command_settings


def cmd_model_projects(args) -> int:
    """List the model projects of mlops.yml (the first is the default)."""
    settings = command_settings(args)
    if args.default:
        print(settings.project)
        return 0
    print(f"{'PROJECT':<30} {'REGISTERED MODEL':<30} {'TASK':<15} DATA")
    for model in settings.models:
        data = model.builtin_params(settings.root)["data"]
        print(f"{model.project:<30} {model.name:<30} {model.task:<15} {data}")
    return 0


def cmd_model_list(args) -> int:
    """List the versions of a registered model."""
    from ml_service.workspace import registry, tracking

    settings = command_settings(args)
    name = args.name or settings.model_name
    versions = registry.list_versions(tracking.connect(settings), name)
    if not versions:
        print(f"no registered versions of {name}")
        return 0
    print(f"{'VERSION':>7}  {'ALIASES':<24} {'METRIC':<22} {'REGISTERED':<19}  RUN")
    for v in versions:
        metric = f"{v.metric} {float(v.tags[v.metric]):.4g}" if v.metric in v.tags else ""
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(v.created / 1000))
        print(f"{v.version:>7}  {','.join(v.aliases):<24} {metric:<22} {when:<19}  {v.run_id}")
    return 0


def cmd_model_show(args) -> int:
    """Show one model version with all its tags."""
    from ml_service.workspace import registry, tracking

    settings = command_settings(args)
    ref = args.ref or f"{settings.model_name}@champion"
    version = registry.resolve_version(tracking.connect(settings), ref)
    print(f"name:     {version.name}\nversion:  {version.version}\naliases:  {', '.join(version.aliases)}")
    print(f"source:   {version.source}\nstatus:   {version.status}\ntags:")
    for key in sorted(version.tags):
        print(f"  {key}: {version.tags[key]}")
    return 0


def _version_of(ref: str, verb: str) -> tuple[str, str]:
    """(name, version) of NAME:VERSION; a usage error for any other reference."""
    from ml_service.workspace.refs import parse_model_ref

    parsed = parse_model_ref(ref)
    if parsed.version is None:
        raise CommandError(f"name the version to {verb} as NAME:VERSION")
    return parsed.name, str(parsed.version)


def cmd_model_delete(args) -> int:
    """Delete a model version that nothing uses."""
    from ml_service.deploy import records
    from ml_service.workspace import registry, tracking

    settings = command_settings(args)
    name, version = _version_of(args.ref, "delete")
    registry.delete_version(tracking.connect(settings), name, version, records.live_versions(settings, name))
    print(f"deleted {name} version {version}")
    return 0


def cmd_model_promote(args) -> int:
    """Make a version the champion by hand (recorded; the same lock as a retrain's registration)."""
    from ml_service.workspace.champion import promote

    settings = command_settings(args)
    name, version = _version_of(args.ref, "promote")
    done = promote(settings, name, version, args.reason or "")
    if not done.changed:
        print(f"{name} version {version} is already the champion: unchanged")
        return 0
    before = f"v{done.previous}" if done.previous else "none"
    print(f"champion of {name}: {before} -> v{version} (recorded as run {done.record_id})")
    return 0


def add_commands(groups) -> None:
    """Register `mlops model`."""
    model = groups.add_parser("model", help="model projects and registered models")
    m_sub = model.add_subparsers(dest="action", metavar="ACTION", required=True)
    projects = m_sub.add_parser("projects", help="the model projects of mlops.yml (the first is the default)")
    projects.add_argument("--default", action="store_true", help="print only the selected project's name")
    projects.set_defaults(func=cmd_model_projects)
    m_list = m_sub.add_parser("list", help="list versions with aliases and metric")
    m_list.add_argument("name", nargs="?", help="registered model name (default: the selected project's)")
    m_list.set_defaults(func=cmd_model_list)
    m_show = m_sub.add_parser("show", help="show one version: NAME:VERSION, NAME@ALIAS or NAME")
    m_show.add_argument("ref", nargs="?", help="default: <model>@champion")
    m_show.set_defaults(func=cmd_model_show)
    m_delete = m_sub.add_parser("delete", help="delete a version nothing serves (refused for live or desired ones)")
    m_delete.add_argument("ref", help="NAME:VERSION")
    m_delete.set_defaults(func=cmd_model_delete)
    m_promote = m_sub.add_parser("promote", help="make a version the champion by hand, e.g. when the alias went "
                                                 "missing (recorded)")
    m_promote.add_argument("ref", help="NAME:VERSION")
    m_promote.add_argument("--reason", help="why, recorded with the promotion")
    m_promote.set_defaults(func=cmd_model_promote)
