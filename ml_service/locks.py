"""Locks between the processes and threads of one workspace on this machine: a file under the state
folder's locks/, held with flock for the duration of a `with` block (released when the process dies, so a
killed holder never leaves it taken). Keyed by the workspace's tracking URI and a name, so two workspaces
that share a state folder never wait on each other."""
from __future__ import annotations

import fcntl
import hashlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def held(state_dir: Path, kind: str, tracking_uri: str, name: str) -> Iterator[None]:
    """Hold the lock `kind` of name in the workspace at tracking_uri until the block ends."""
    folder = Path(state_dir) / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(f"{tracking_uri}|{name}".encode()).hexdigest()[:16]
    with open(folder / f"{kind}-{key}.lock", "w") as handle:  # a new open file: threads exclude each other too
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
