"""Login rate limits: too many failed logins for one user name, or from one client address, and further
attempts are refused (HTTP 429) without checking the password, until the window passes.

The counts live in the Studio process's memory: a restart clears them, and they hold for one Studio
process (several processes behind a balancer would each count on their own). Each table keeps at most
`capacity` keys, dropping the least recently failed first, so a flood of random names cannot grow
memory without limit.

An attempt counts as a failure before its password is checked (and is taken back on success), so
parallel guesses cannot slip past the limit while scrypt runs.
"""
from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from typing import Callable

from ml_service import identity

CAPACITY = 10_000


class Failures:
    """Failed attempts per key (a user name or an address) in a window; `limit` of them lock the key
    for `window` seconds from the last one."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float], capacity: int = CAPACITY):
        self.limit, self.window, self.clock, self.capacity = limit, window, clock, capacity
        self._entries: OrderedDict[str, list[float]] = OrderedDict()  # key -> [first failure, count, locked until]

    def __len__(self) -> int:
        return len(self._entries)

    def _live(self, key: str, now: float) -> list[float] | None:
        entry = self._entries.get(key)
        if entry is not None and (now >= entry[2] if entry[2] else now - entry[0] >= self.window):
            del self._entries[key]
            return None
        return entry

    def wait(self, key: str) -> float:
        """Seconds until the key may try again (0: it may now)."""
        now = self.clock()
        entry = self._live(key, now)
        return entry[2] - now if entry and entry[2] else 0.0

    def fail(self, key: str) -> None:
        """One more failure for the key; the limit-th locks it for a window."""
        now = self.clock()
        entry = self._live(key, now) or [now, 0, 0.0]
        entry[1] += 1
        if entry[1] >= self.limit:
            entry[2] = now + self.window
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def forgive(self, key: str) -> None:
        """Take back one failure (an attempt that turned out right)."""
        entry = self._live(key, self.clock())
        if entry is not None:
            entry[1] -= 1
            if entry[1] < self.limit:
                entry[2] = 0.0
            if entry[1] <= 0:
                del self._entries[key]

    def clear(self, key: str) -> None:
        """Forget the key's failures."""
        self._entries.pop(key, None)


class LoginLimits:
    """Per user name and per client address failure limits for POST /login."""

    def __init__(self, per_user: int = 5, per_address: int = 20, window: float = 15 * 60,
                 clock: Callable[[], float] = time.monotonic, capacity: int = CAPACITY):
        self.users = Failures(per_user, window, clock, capacity)
        self.addresses = Failures(per_address, window, clock, capacity)
        self._lock = threading.Lock()

    def begin(self, user: str, address: str) -> tuple[str, float]:
        """Before checking a password: ("", 0) and the attempt counted as a failure, or the reason it is
        refused ("user" or "address") and the seconds to wait."""
        user = identity.key(user)  # one user under every spelling (ml_service/identity.py)
        with self._lock:
            for reason, table, key in (("user", self.users, user), ("address", self.addresses, address)):
                wait = table.wait(key)
                if wait > 0:
                    return reason, wait
            self.users.fail(user)
            self.addresses.fail(address)
            return "", 0.0

    def unchecked(self, user: str, address: str) -> None:
        """The password could not be checked (the team server did not answer): the attempt is taken back."""
        with self._lock:
            self.users.forgive(identity.key(user))
            self.addresses.forgive(address)

    def succeeded(self, user: str, address: str) -> None:
        """The password was right: the user's failures are cleared, the address's attempt taken back."""
        with self._lock:
            self.users.clear(identity.key(user))
            self.addresses.forgive(address)


def minutes(seconds: float) -> int:
    """Whole minutes to wait, rounded up (never 0)."""
    return max(1, math.ceil(seconds / 60))
