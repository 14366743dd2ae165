"""Pipeline steps for tests: line concurrent pipeline runs up before they register, then let them register in a
set order, by events (files in a shared folder), never by sleeping for a while."""
from __future__ import annotations

import os
import time
from pathlib import Path


def _wait_for(condition, what: str, seconds: float = 600) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {seconds:.0f}s for {what}")
        time.sleep(0.05)


def barrier(inputs, params, output_dir, context):
    """Wait until `count` runs arrived in `dir` (every run has evaluated), then until the run before this one in
    `order` has registered (its `registered` step ran): no run registers before all have evaluated."""
    folder = Path(params["dir"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"arrived-{os.getpid()}").touch()
    count, order = int(params["count"]), int(params["order"])
    _wait_for(lambda: len(list(folder.glob("arrived-*"))) >= count, f"{count} runs to arrive in {folder}")
    if order > 0:
        _wait_for((folder / f"registered-{order - 1}").exists, f"run {order - 1} to register")
    return {}


def registered(inputs, params, output_dir, context):
    """This run's register step is over: the next run in `order` may register."""
    (Path(params["dir"]) / f"registered-{params['order']}").touch()
    return {}
