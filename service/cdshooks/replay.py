"""The JWT replay table every worker on this host shares: a file of (token hash, expiry) slots.

A token id is checked and recorded under an exclusive file lock with one `pread` and one `pwrite` (a few
microseconds, no database round trip on the answer path); a replay is caught whichever worker it reaches, and
after a restart too (the file stays). It spans one host, like the SQLite file beside it: replicas on several hosts
share PostgreSQL and use the database table instead (`MSCC_REPLAY_CHECK=database`, the default with PostgreSQL).

The file is read and written with system calls, never memory-mapped: a store through a mapping to a page that needs
a new disk block (disk full) or lies past the end of a truncated file kills the process with SIGBUS, while a
`pwrite` that the disk refuses is an `OSError` the caller survives. Every storage fault (disk full, read-only or
immutable file or folder, the file deleted or cut short) raises `ReplayTableFault`; the opener then drops the table,
the caller falls back to the database table, and the file is opened afresh once `RETRY_SECONDS` have passed.

Slots are found by linear probing from the hash; a slot whose token has expired is free again. When a run of
`MAX_PROBES` slots is all live tokens (a table far fuller than its sizing), `remember` answers None and the
caller falls back to the database table: never a replay let through, never a token refused for want of room.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import struct
import time
from collections.abc import Callable
from pathlib import Path

SLOT = struct.Struct("<QQ")  # token hash (0: empty), expiry in Unix seconds
DEFAULT_SLOTS = 1 << 21  # 32 MiB; at 1,000 calls a second, 5-minute tokens fill 15% of it
MAX_PROBES = 64
RETRY_SECONDS = 5.0  # how often a worker tries again to open a table it could not open or write
IDENTITY_CHECK_SECONDS = 1.0  # how often a table checks that its path still names its file (deleted, replaced)
log = logging.getLogger("service.replay")


class ReplayTableFault(OSError):
    """The table's file cannot be read or written as it should (a storage fault, never a replay)."""


class HostReplayTable:
    def __init__(self, path: Path, slots: int | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        slots = slots or DEFAULT_SLOTS
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.slots = slots
        self._size = slots * SLOT.size
        self._clock = clock
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(self._fd).st_size != self._size:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
                try:
                    if os.fstat(self._fd).st_size != self._size:  # new, or sized otherwise: start it afresh
                        os.ftruncate(self._fd, 0)
                        _allocate(self._fd, self._size)
                finally:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
            self._inode = os.fstat(self._fd).st_ino
        except OSError:
            os.close(self._fd)
            raise
        self._checked_at = clock()

    def remember(self, token_key: str, expires: int, now: int) -> bool | None:
        """True: recorded now. False: seen before and not expired (a replay). None: no room near its slot.
        Raises ReplayTableFault when storage fails."""
        digest = hashlib.blake2b(token_key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        key = int.from_bytes(digest, "little") or 1
        start = key % self.slots
        probes = min(MAX_PROBES, self.slots)
        self._check_identity()
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                run = self._read_run(start, probes)
                free = None
                for probe in range(probes):
                    held, until = SLOT.unpack_from(run, probe * SLOT.size)
                    if held == key and until >= now:
                        return False
                    if held == 0 or until < now:
                        if free is None:
                            free = probe
                        if held == 0:
                            break  # nothing was ever stored past an empty slot
                if free is None:
                    return None
                offset = ((start + free) % self.slots) * SLOT.size
                if os.pwrite(self._fd, SLOT.pack(key, expires), offset) != SLOT.size:
                    raise ReplayTableFault(28, "short write to the replay table")
                return True
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        except ReplayTableFault:
            raise
        except OSError as error:
            raise ReplayTableFault(error.errno, error.strerror) from error

    def _read_run(self, start: int, probes: int) -> bytes:
        """The `probes` slots from `start` on, wrapping at the end, in at most two reads."""
        first = min(probes, self.slots - start)
        run = os.pread(self._fd, first * SLOT.size, start * SLOT.size)
        if first < probes:
            run += os.pread(self._fd, (probes - first) * SLOT.size, 0)
        if len(run) != probes * SLOT.size:  # the file was cut short under us
            raise ReplayTableFault(5, "the replay table is shorter than its slots")
        return run

    def _check_identity(self) -> None:
        """Every IDENTITY_CHECK_SECONDS: the path must still name this file at its size (not deleted, replaced or
        truncated), or the workers of the host would no longer share one table."""
        now = self._clock()
        if now - self._checked_at < IDENTITY_CHECK_SECONDS:
            return
        self._checked_at = now
        try:
            named = os.stat(self.path)
        except OSError as error:
            raise ReplayTableFault(error.errno, "the replay table's file is gone") from error
        if named.st_ino != self._inode or named.st_size != self._size:
            raise ReplayTableFault(5, "the replay table's file was replaced or resized")

    def close(self) -> None:
        os.close(self._fd)


def _allocate(fd: int, size: int) -> None:
    """Give the file all its disk blocks now, zeroed: a slot written later never needs a new block, so the table
    keeps working on a full disk. A filesystem without fallocate gets a sparse file (a write may then fail)."""
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as error:
        if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
            os.ftruncate(fd, 0)
            raise
        os.ftruncate(fd, size)


class HostReplayTableOpener:
    """The host table of this worker, or None while its file cannot be opened or written (tried again every
    RETRY_SECONDS)."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._clock = clock
        self._table: HostReplayTable | None = None
        self._next_try = 0.0

    def table(self) -> HostReplayTable | None:
        if self._table is None and self._clock() >= self._next_try:
            try:
                self._table = HostReplayTable(self.path, clock=self._clock)
            except OSError as error:
                self._wait("host replay table cannot be opened", error)
        return self._table

    def remember(self, token_key: str, expires: int, now: int) -> tuple[bool | None, str | None]:
        """The table's answer, and why the database must answer instead when it cannot: "host-table-full",
        "host-table-unavailable" (no table open) or "host-table-fault" (storage failed: the table is dropped)."""
        table = self.table()
        if table is None:
            return None, "host-table-unavailable"
        try:
            seen = table.remember(token_key, expires, now)
        except ReplayTableFault as fault:
            self.close()
            self._wait("host replay table cannot be written", fault)
            return None, "host-table-fault"
        return seen, None if seen is not None else "host-table-full"

    def _wait(self, what: str, error: OSError) -> None:
        self._next_try = self._clock() + RETRY_SECONDS
        log.warning(
            f"{what}: the database check answers until it can",
            extra={"fields": {"error": type(error).__name__, "errno": error.errno, "retry_seconds": RETRY_SECONDS}},
        )

    def close(self) -> None:
        if self._table is not None:
            with contextlib.suppress(OSError):
                self._table.close()
            self._table = None
