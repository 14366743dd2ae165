"""Run the scoring service: `python -m ml_service.serving [--host H] [--port N] [--workers W]`."""
from __future__ import annotations

import argparse
import sys


def serve(host: str, port: int, workers: int = 1) -> None:
    """Start uvicorn on the app factory (settings come from the environment)."""
    import uvicorn

    uvicorn.run("ml_service.serving.app:create_app", factory=True, host=host, port=port, workers=workers,
                access_log=False, log_level="warning", http="httptools", loop="uvloop", server_header=False)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry of the scoring process (used in the scoring image)."""
    parser = argparse.ArgumentParser(description="Scoring service")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: %(default)s)")
    parser.add_argument("--port", type=int, default=5001, help="port (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default: %(default)s)")
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
