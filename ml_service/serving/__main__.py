"""Run the scoring service: `python -m ml_service.serving [--host H] [--port N] [--workers W]`."""
from __future__ import annotations

import argparse
import sys


def serve(host: str, port: int, workers: int | None = None, reuse_port: bool = False, settings=None) -> int:
    """Serve the app until SIGTERM; workers None: settings.workers.

    Args:
        settings: the service's ServingSettings given as values (`mlops serve`); None reads them from the
            environment (the scoring image). Worker processes get its model in their environment.
    """
    from ml_service.serving.config import load_serving_settings, worker_environment
    from ml_service.serving.server import run_worker, supervise

    settings = settings or load_serving_settings()
    workers = workers or settings.workers
    if workers > 1:
        return supervise(workers, host, port, worker_environment(settings))
    return run_worker(settings, host, port, reuse_port=reuse_port)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry of the scoring process (used in the scoring image)."""
    parser = argparse.ArgumentParser(description="Scoring service")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: %(default)s)")
    parser.add_argument("--port", type=int, default=5001, help="port (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes (default: MLOPS_WORKERS, a number or 'auto' for one a CPU; else 1)")
    parser.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    return serve(args.host, args.port, args.workers, args.reuse_port)


if __name__ == "__main__":
    sys.exit(main())
