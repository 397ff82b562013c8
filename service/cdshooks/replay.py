"""The JWT replay table every worker on this host shares: a memory-mapped file of (token hash, expiry) slots.

A token id is checked and recorded under an exclusive file lock in a few microseconds, with no database round
trip on the answer path; a replay is caught whichever worker it reaches, and after a restart too (the file
stays). It spans one host, like the SQLite file beside it: replicas on several hosts share PostgreSQL and use the
database table instead (`MSCC_REPLAY_CHECK=database`, the default with PostgreSQL).

Slots are found by linear probing from the hash; a slot whose token has expired is free again. When a run of
`MAX_PROBES` slots is all live tokens (a table far fuller than its sizing), `remember` answers None and the
caller falls back to the database table: never a replay let through, never a token refused for want of room.

`HostReplayTableOpener` opens the file for a worker, and again later when it could not (a read-only folder when
the worker started): the worker starts and answers meanwhile, with the database check.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import mmap
import os
import struct
import time
from collections.abc import Callable
from pathlib import Path

SLOT = struct.Struct("<QQ")  # token hash (0: empty), expiry in Unix seconds
DEFAULT_SLOTS = 1 << 21  # 32 MiB; at 1,000 calls a second, 5-minute tokens fill 15% of it
MAX_PROBES = 64
RETRY_SECONDS = 5.0  # how often a worker tries again to open a table it could not open
log = logging.getLogger("service.replay")


class HostReplayTable:
    def __init__(self, path: Path, slots: int | None = None) -> None:
        slots = slots or DEFAULT_SLOTS
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        size = slots * SLOT.size
        if os.fstat(self._fd).st_size != size:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                if os.fstat(self._fd).st_size != size:  # a new file, or one sized otherwise: start it afresh
                    os.ftruncate(self._fd, 0)
                    os.ftruncate(self._fd, size)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        self.slots = slots
        self._map = mmap.mmap(self._fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)

    def remember(self, token_key: str, expires: int, now: int) -> bool | None:
        """True: recorded now. False: seen before and not expired (a replay). None: no room near its slot."""
        digest = hashlib.blake2b(token_key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        key = int.from_bytes(digest, "little") or 1
        start = key % self.slots
        free = None
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            for probe in range(min(MAX_PROBES, self.slots)):
                offset = ((start + probe) % self.slots) * SLOT.size
                held, until = SLOT.unpack_from(self._map, offset)
                if held == key and until >= now:
                    return False
                if held == 0 or until < now:
                    if free is None:
                        free = offset
                    if held == 0:
                        break  # nothing was ever stored past an empty slot
            if free is None:
                return None
            SLOT.pack_into(self._map, free, key, expires)
            return True
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)


class HostReplayTableOpener:
    """The host table of this worker, or None while its file cannot be opened (tried again every RETRY_SECONDS)."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._clock = clock
        self._table: HostReplayTable | None = None
        self._next_try = 0.0

    def table(self) -> HostReplayTable | None:
        if self._table is None and self._clock() >= self._next_try:
            try:
                self._table = HostReplayTable(self.path)
            except OSError as error:
                self._next_try = self._clock() + RETRY_SECONDS
                log.warning(
                    "host replay table cannot be opened: the database check answers until it can",
                    extra={"fields": {"error": type(error).__name__, "retry_seconds": RETRY_SECONDS}},
                )
        return self._table

    def close(self) -> None:
        if self._table is not None:
            self._table.close()
            self._table = None
