"""`mlops ci expand FILE [--param K=V] [--branch B]`: the pipeline as Azure's "Download full YAML" shows it
(ml_service/ci/server/expand.py)."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from ml_service.ci.server.expand import expand, plain


def cmd_expand(args) -> int:
    """Print the expanded pipeline as YAML; errors (with file:line) on stderr, exit 1."""
    import yaml

    from ml_service.ci.model import schema
    from ml_service.ci.server import service
    from ml_service.ci.model.repositories import RepositoryError
    from ml_service.ci.model.template import TemplateError
    from ml_service.config import load_settings

    settings = load_settings()
    try:
        file = service.resolve_file(settings, args.file)
        params = dict(service.parse_param(p) for p in args.param)
        with tempfile.TemporaryDirectory() as cache:
            document = expand(settings, file, params, args.branch or "", Path(cache))
        schema.check(document, str(file))
    except (TemplateError, RepositoryError, schema.SchemaError, service.CIError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(yaml.safe_dump(plain(document), sort_keys=False, allow_unicode=True, width=120))
    return 0


def add_commands(sub) -> None:
    """Register `mlops ci expand`."""
    parser = sub.add_parser("expand", help="print the pipeline fully expanded (templates, parameters, ${{ }}), as "
                                           "Azure's 'Download full YAML'")
    parser.add_argument("file", help="a pipeline file or name")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="a pipeline parameter")
    parser.add_argument("--branch", help="the branch being built (default: the checkout's): feeds "
                                         "Build.SourceBranch and the other compile-time variables")
    parser.set_defaults(func=cmd_expand)
