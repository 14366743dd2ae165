"""`mlops serve`, `mlops smoke-test`, `mlops image build`: the scoring service here, its smoke test, its image."""
from __future__ import annotations

import sys
from pathlib import Path

from ml_service.cli.options import MODEL_VERSION
from ml_service.cli.support import EXIT_FAILED, CommandError, command_settings, registered_name
from ml_service.deploy.payload import smoke_payload


def cmd_serve(args) -> int:
    """Serve a registered model version locally with the scoring service."""
    import dataclasses
    import tempfile

    from ml_service.deploy.image import download_model
    from ml_service.serving.__main__ import serve
    from ml_service.serving.config import load_serving_settings
    from ml_service.workspace import registry, tracking

    settings = command_settings(args)
    ref = args.model or f"models:/{settings.model_name}@champion"
    settings = settings.for_registered(registered_name(ref) or "")
    version = registry.resolve_version(tracking.connect(settings), ref)
    with tempfile.TemporaryDirectory(prefix="mlops-serve-") as tmp:
        model = {"model_dir": str(download_model(version, Path(tmp))), "model_name": version.name,
                 "model_version": str(version.version)}
        if settings.models and settings.model.name == version.name and settings.model.score_module:
            model["score_module"] = settings.model.score_module
        serving = dataclasses.replace(load_serving_settings(), **model)  # limits and keys: the environment's
        print(f"serving {version.name} version {version.version} on http://127.0.0.1:{args.port} "
              f"(docs: /docs, metrics: /metrics; Ctrl-C to stop)", flush=True)
        serve("127.0.0.1", args.port, args.workers, settings=serving)
    return 0


def cmd_smoke_test(args) -> int:
    """Smoke-test an environment's live deployment of the model, or a URL."""
    import os

    from ml_service.deploy.smoke import SmokeTestError, smoke_test

    settings = command_settings(args)
    url = args.target
    if not url.startswith(("http://", "https://")):
        from ml_service.deploy import records

        deployment = records.current(settings, url, settings.model_name)
        if deployment is None or not deployment.url:
            raise CommandError(f"no live deployment of {settings.model_name} with a URL in environment '{url}' "
                               "(see `mlops deploy list`)")
        url = deployment.url
    try:
        result = smoke_test(url, key=os.environ.get(args.key_env) or None, timeout_s=args.timeout,
                            payload=smoke_payload(settings))
    except SmokeTestError as exc:
        print(f"smoke test FAILED for {url}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"smoke test passed for {url}: {', '.join(result.checks)}; result {result.result}")
    return 0


def cmd_image_build(args) -> int:
    """Build the scoring image of a registered model version."""
    from ml_service.deploy.image import build_for_version

    built = build_for_version(command_settings(args, registered_name(args.model)), args.model)
    print(f"built {built.tag} ({built.size_bytes / 1e6:.0f} MB) in {built.seconds:.1f}s"
          + (f"; pushed {built.pushed} (digest {built.digest or 'not reported'})" if built.pushed else ""))
    return 0


def add_commands(groups) -> None:
    """Register `mlops serve`, `mlops smoke-test` and `mlops image`."""
    serve = groups.add_parser("serve", help="serve a registered model locally (the scoring service)")
    MODEL_VERSION.add(serve, help="models:/NAME@ALIAS, NAME:VERSION ... (default: models:/<model>@champion)")
    serve.add_argument("--port", type=int, default=5001, help="port on 127.0.0.1 (default: %(default)s)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default: %(default)s)")
    serve.set_defaults(func=cmd_serve)

    smoke = groups.add_parser("smoke-test", help="smoke-test an environment (qa, production) or a URL")
    smoke.add_argument("target", help="environment name or http://127.0.0.1:PORT")
    smoke.add_argument("--timeout", type=float, default=60, help="seconds to wait for readiness (default: 60)")
    smoke.add_argument("--key-env", default="MLOPS_SCORING_KEY",
                       help="environment variable holding the scoring key, if auth is on (default: %(default)s)")
    smoke.set_defaults(func=cmd_smoke_test)

    image = groups.add_parser("image", help="scoring images")
    i_sub = image.add_subparsers(dest="action", metavar="ACTION", required=True)
    build = i_sub.add_parser("build", help="build the scoring image of a model version")
    MODEL_VERSION.add(build, required=True)
    build.set_defaults(func=cmd_image_build)
