"""A pipeline step for tests: a barrier that lines up concurrent pipeline runs before they register."""
from __future__ import annotations

import os
import time
from pathlib import Path


def barrier(inputs, params, output_dir, context):
    """Wait until `count` runs arrived in `dir`, then `order` seconds more (so they register in a set order)."""
    folder = Path(params["dir"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / str(os.getpid())).touch()
    deadline = time.monotonic() + 300
    while len(list(folder.iterdir())) < int(params["count"]):
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(list(folder.iterdir()))} of {params['count']} runs arrived")
        time.sleep(0.05)
    time.sleep(float(params["order"]) * 2.0)
    return {}
