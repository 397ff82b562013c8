"""Storage that just failed is left alone by the answer path for a moment.

A database that is down, full or locked can make each attempt wait (SQLite's busy timeout is 5 s), and a hook call
must not wait on it: after a failure the replay check skips the database for `COOL_SECONDS` (this process's own
check answers), while the journal's drainer, which does not stop for the breaker, keeps trying and closes it as
soon as storage takes rows again. (Decision rows never touch the database on the answer path at all.)
"""

from __future__ import annotations

import time
from collections.abc import Callable

COOL_SECONDS = 2.0


class StorageBreaker:
    def __init__(self, cool_seconds: float = COOL_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.cool_seconds = cool_seconds
        self._clock = clock
        self._until = 0.0

    @property
    def open(self) -> bool:
        """True while the answer path should not try storage."""
        return self._clock() < self._until

    def failed(self) -> None:
        self._until = self._clock() + self.cool_seconds

    def succeeded(self) -> None:
        self._until = 0.0


class StorageSkipped(Exception):
    """Storage failed a moment ago: the answer path does not wait on it."""
