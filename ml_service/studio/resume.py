"""`python -m ml_service.studio.resume RUN`: continue a run after the Studio recorded its approval."""
from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    """Run the approved run to its end (and what its completion triggers)."""
    from ml_service.ci.server import service
    from ml_service.config import load_settings
    from ml_service.errors import MLOpsError

    settings = load_settings()
    store = service.open_store(settings)
    try:
        ran = service.execute(settings, store, int(argv[0]))
    except MLOpsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    for run_id in ran:
        run = store.get_run(run_id)
        print(f"run {run_id} ({run.pipeline}): {run.result or run.status}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
