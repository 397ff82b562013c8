"""The decision journal: every decision row goes to local disk on the answer path, and to the database in batches.

A hook call appends its row to this worker's journal file (one JSON line, one `write` system call, no database
round trip) before its answer leaves, so a worker killed a moment later loses nothing it answered. A drainer in
each worker moves the rows to the database every `MSCC_DECISION_FLUSH_SECONDS` (0.2 s), many rows per
transaction; while the database is down the rows stay on disk and are written when it returns. A row already in
the database counts as written (insert-or-ignore on its id), so a row is never stored twice.

Files are `decisions-<pid>-<n>.jsonl`. A worker appends only to its newest file and drains only its own closed
files and the files of workers that are no longer running (an exclusive lock keeps two drainers off one file).
When storage fails partway through a file, the rows left are written beside it and renamed over it: a crash
during a drain leaves either the whole file or the rest, never a cut one.
Without `MSCC_DECISION_FSYNC`, an append survives a crash of the process but not of the machine; the database
has the row within the flush interval.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import MISSING, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

from service.store.db import Store
from service.store.decisions import DecisionRecord

_PATTERN = "decisions-*.jsonl"
_NAME = re.compile(r"^decisions-(\d+)(?:-(\d+))?\.jsonl$")
REJECTED = "rejected-decisions.jsonl"  # rows the database refused for good: for an operator to read
BATCH_ROWS = 500  # rows per transaction when draining
log = logging.getLogger("service.decisionlog")


def _encode(record: DecisionRecord) -> bytes:
    return orjson.dumps(record) + b"\n"


_FIELDS = frozenset(f.name for f in fields(DecisionRecord))
_REQUIRED = frozenset(f.name for f in fields(DecisionRecord) if f.default is MISSING)


def _decode(line: str | bytes) -> dict[str, Any]:
    """A journal line as a database row; ValueError for a line this service did not write."""
    row = orjson.loads(line)
    if not isinstance(row, dict) or not _REQUIRED <= row.keys() <= _FIELDS:
        raise ValueError("not a decision row")
    row["created_at"] = datetime.fromisoformat(row["created_at"])
    return row


class DecisionSpool:
    def __init__(self, folder: Path, *, fsync: bool = False) -> None:
        self.folder = folder
        self.fsync = fsync
        self.pid = os.getpid()
        self._lock = threading.Lock()  # the answer path appends while the drainer (another thread) rotates
        self._sequence = _next_sequence(folder, self.pid)  # a reused pid never appends to an old worker's file
        self._fd: int | None = None
        self._current_rows = 0
        self._first_append: dict[Path, float] = {}  # own files not yet drained -> when their first row came
        self.unwritten = 0  # own rows not yet in the database
        self.stalled = False  # the last drain left rows behind: storage refused them

    @property
    def path(self) -> Path:
        """The file this process appends to now."""
        return self.folder / f"decisions-{self.pid}-{self._sequence}.jsonl"

    def put(self, row: DecisionRecord) -> None:
        """Append one row (flushed to the OS, and to the disk with `fsync`); raises OSError when the disk refuses."""
        line = _encode(row)
        with self._lock:
            if self._fd is None:
                self.folder.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            written = os.write(self._fd, line)
            if written != len(line):  # a short write (disk full mid-line): never leave half a row behind
                os.ftruncate(self._fd, os.fstat(self._fd).st_size - written)
                raise OSError(28, "short write to the decision journal")
            if self.fsync:
                os.fsync(self._fd)
            if self._current_rows == 0:
                self._first_append[self.path] = time.monotonic()
            self._current_rows += 1
            self.unwritten += 1

    def lag_seconds(self) -> float:
        """How long the oldest row of this process has waited for the database (0 when none waits)."""
        oldest = min(self._first_append.values(), default=None)
        return 0.0 if oldest is None else time.monotonic() - oldest

    def _rotate(self) -> None:
        """Start a new file, so the drainer can take the current one whole while appends go on."""
        with self._lock:
            if self._fd is None or self._current_rows == 0:
                return
            os.close(self._fd)
            self._fd = None
            self._sequence += 1
            self._current_rows = 0

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def _reject(self, line: bytes) -> None:
        """Keep a row the database refuses for good beside the spool, and say so (its id, never its content)."""
        with (self.folder / REJECTED).open("ab") as handle:
            handle.write(line + b"\n")
        try:
            parsed = orjson.loads(line)
        except ValueError:
            parsed = None
        decision_id = parsed.get("id") if isinstance(parsed, dict) else None
        log.error(
            "spooled decision row refused by the database; kept in the rejected file",
            extra={"fields": {"decision_id": decision_id}},
        )

    def pending(self) -> int:
        """Rows on disk not yet in the database, in every worker's files (reads them: not for the answer path)."""
        if not self.folder.is_dir():
            return 0
        total = 0
        for path in self.folder.glob(_PATTERN):
            try:
                with path.open("rb") as handle:
                    total += sum(1 for line in handle if line.strip())
            except FileNotFoundError:
                continue  # drained and removed meanwhile
        return total

    def _drainable(self) -> Iterator[Path]:
        """Own files but the one being appended to, and the files of processes that are no longer running."""
        current = self.path
        for path in sorted(self.folder.glob(_PATTERN), key=_order):
            match = _NAME.match(path.name)
            if match is None or path == current:
                continue
            if int(match.group(1)) == self.pid or not _owner_alive(path):
                yield path

    def drain(self, store: Store) -> int:
        """Write every journaled row storage accepts; keep the rest. Returns how many rows left the journal.
        Raises nothing for a storage outage: the rows wait for the next drain."""
        if not self.folder.is_dir():
            return 0
        self._rotate()
        moved = 0
        self.stalled = False
        for path in list(self._drainable()):
            done, complete = self._drain_file(path, store)
            moved += done
            if not complete:
                self.stalled = True
                break  # storage is down: the newer files wait too
        return moved

    def _drain_file(self, path: Path, store: Store) -> tuple[int, bool]:
        try:
            handle = path.open("r+b")
        except FileNotFoundError:
            return 0, True
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0, True  # another process is draining it
            if not _still_named(path, handle.fileno()):
                return 0, True  # drained meanwhile, or replaced by what another drain left: the next drain takes it
            _partial(path).unlink(missing_ok=True)  # left by a drain killed before its rename: the file holds it all
            # Split on newlines only: orjson writes U+2028 and U+0085 as they are, and `splitlines` would cut a
            # row that holds one in two (both then refused as not rows).
            lines = [line for line in handle.read().split(b"\n") if line.strip()]
            done = 0
            for start in range(0, len(lines), BATCH_ROWS):
                batch = lines[start : start + BATCH_ROWS]
                try:
                    self._write_batch(batch, store)
                except SQLAlchemyError:
                    break  # storage still down: this batch and the rest stay
                done += len(batch)
            complete = done == len(lines)
            if complete:
                path.unlink(missing_ok=True)  # under the lock: nobody appends to a closed or dead worker's file
            elif done:
                _replace(path, b"".join(line + b"\n" for line in lines[done:]))
        if _owner(path) == self.pid:
            self.unwritten = max(0, self.unwritten - done)
            if complete:
                self._first_append.pop(path, None)
        return done, complete

    def _write_batch(self, lines: list[bytes], store: Store) -> None:
        """One transaction for the batch; a row the database refuses for good is found one by one and set aside.
        A storage outage raises SQLAlchemyError."""
        rows: list[tuple[dict[str, Any], bytes]] = []
        for line in lines:
            try:
                rows.append((_decode(line), line))
            except (ValueError, TypeError):
                self._reject(line)  # not a row this service wrote
        try:
            store.write_decision_rows([row for row, _ in rows])
            return
        except (IntegrityError, DataError):
            pass
        for row, line in rows:
            try:
                store.write_decision_rows([row])
            except (IntegrityError, DataError):
                self._reject(line)  # the database will never take it: kept apart, reported, not retried


def _partial(path: Path) -> Path:
    """Where a partly drained file's remaining rows are written before they replace it (not a journal name)."""
    return path.with_name(path.name + ".partial")


def _replace(path: Path, remaining: bytes) -> None:
    """Put the rows a drain left in place of the file, atomically: written and synced beside it, then renamed over
    it, so a crash at any moment leaves either the whole old file or the new one (truncating in place and writing
    again lost every row left whenever the process died in between)."""
    partial = _partial(path)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(remaining)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(partial, path)
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    """Make a rename durable (POSIX: the directory entry is only on disk once the directory is synced)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _still_named(path: Path, fd: int) -> bool:
    """Whether `path` still names the file open as `fd`: a drain may have removed or replaced it meanwhile."""
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _next_sequence(folder: Path, pid: int) -> int:
    taken = [_order(p)[1] for p in folder.glob(f"decisions-{pid}-*.jsonl")] if folder.is_dir() else []
    return max(taken, default=-1) + 1


def _owner(path: Path) -> int | None:
    match = _NAME.match(path.name)
    return int(match.group(1)) if match else None


def _order(path: Path) -> tuple[int, int]:
    match = _NAME.match(path.name)
    return (int(match.group(1)), int(match.group(2) or -1)) if match else (0, 0)


def _owner_alive(path: Path) -> bool:
    """Whether the process named in `decisions-<pid>-<n>.jsonl` is running (unknown owner counts as alive)."""
    pid = _owner(path)
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
