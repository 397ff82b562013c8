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

Storage faults under the folder are survived, and no row goes without being counted:
- a row neither the journal nor the database takes is *held* in memory (`hold`, up to `MAX_HELD` rows): it is "at
  risk" (counted, `/readyz` says degraded) until a later drain writes it to the database or the journal;
- the file being appended to, deleted or replaced under the worker, is read back through its descriptor at the next
  rotation and its rows are held (then written): nothing it held is lost;
- rows that vanished from an own file before it was drained (the file cut short, or deleted while the database was
  down) are found by their ids, each logged and counted as lost.
"""

from __future__ import annotations

import contextlib
import dataclasses
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
from service.store.decisionrow import DecisionRecord
from service.textsafe import without_lone_surrogates

_PATTERN = "decisions-*.jsonl"
_NAME = re.compile(r"^decisions-(\d+)(?:-(\d+))?\.jsonl$")
_ID = re.compile(rb'^\{"id":"([^"\\]{1,100})"')  # orjson writes a dataclass's fields in order: `id` first
HEARTBEAT = ".alive"  # touched by each drain: a replica's journal folder with a stale one is adopted by the others
REJECTED = "rejected-decisions.jsonl"  # rows the database refused for good: for an operator to read
BATCH_ROWS = 500  # rows per transaction when draining
MAX_HELD = 100_000  # rows held in memory while both the journal and the database refuse them (about 100 MB)
MAX_TRACKED_IDS = 200_000  # row ids remembered per worker to name rows removed from its files under it
log = logging.getLogger("service.decisionlog")


def _encode(record: DecisionRecord) -> bytes:
    try:
        return orjson.dumps(record) + b"\n"
    except TypeError:  # a lone surrogate in a reference from the chart: not UTF-8, so shown as U+FFFD
        return orjson.dumps(without_lone_surrogates(dataclasses.asdict(record))) + b"\n"


_FIELDS = frozenset(f.name for f in fields(DecisionRecord))
_REQUIRED = frozenset(f.name for f in fields(DecisionRecord) if f.default is MISSING)


def _decode(line: str | bytes) -> dict[str, Any]:
    """A journal line as a database row; ValueError for a line this service did not write."""
    row = orjson.loads(line)
    if not isinstance(row, dict) or not _REQUIRED <= row.keys() <= _FIELDS:
        raise ValueError("not a decision row")
    row["created_at"] = datetime.fromisoformat(row["created_at"])
    return row


def folder_writable(folder: Path) -> bool:
    """Whether the folder exists (or can be made) and takes new files."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK | os.X_OK)


class DecisionSpool:
    def __init__(self, folder: Path, *, fsync: bool = False) -> None:
        self.folder = folder
        self.fsync = fsync
        self.pid = os.getpid()
        self._lock = threading.Lock()  # the answer path appends while the drainer (another thread) rotates
        self._draining = threading.Lock()  # the drainer and a reader catching up (feedback) never drain at once
        self._sequence = _next_sequence(folder, self.pid)  # a reused pid never appends to an old worker's file
        self._fd: int | None = None
        self._current_rows = 0
        self._first_append: dict[Path, float] = {}  # own files not yet drained -> when their first row came
        self.unwritten = 0  # own rows not yet in the database
        self.stalled = False  # the last drain left rows behind: storage refused them
        self._held: list[bytes] = []  # rows neither the disk nor the database has yet: at risk
        self._ids: dict[Path, list[str]] = {}  # own files not yet drained -> the ids of the rows appended to them
        self._tracked = 0
        self.lost = 0  # rows removed from own files under this worker before they reached the database
        self.journal_failing = False  # the last append was refused by the disk

    @property
    def path(self) -> Path:
        """The file this process appends to now."""
        return self.folder / f"decisions-{self.pid}-{self._sequence}.jsonl"

    def put(self, row: DecisionRecord) -> None:
        """Append one row (flushed to the OS, and to the disk with `fsync`); raises OSError when the disk refuses."""
        line = _encode(row)
        with self._lock:
            try:
                self._append(line, row.id)
            except OSError:
                self.journal_failing = True
                raise
            self.journal_failing = False

    def _append(self, line: bytes, row_id: str | None) -> None:
        if self._fd is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
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
        if row_id is not None and self._tracked < MAX_TRACKED_IDS:
            self._ids.setdefault(self.path, []).append(row_id)
            self._tracked += 1

    def writable(self) -> bool:
        """Whether the journal folder takes new files: a folder on a read-only root filesystem shows on /readyz
        before the first call, not as a warning per call after it."""
        return folder_writable(self.folder)

    def hold(self, row: DecisionRecord) -> bool:
        """Keep a row neither the journal nor the database took, in memory, for the next drain to write. False
        when MAX_HELD rows are held already: the row is lost (the caller logs and counts it)."""
        with self._lock:
            if len(self._held) >= MAX_HELD:
                return False
            self._held.append(_encode(row))
            return True

    @property
    def at_risk(self) -> int:
        """Rows of this worker held in memory only: lost if the worker dies before storage takes them."""
        return len(self._held)

    def lag_seconds(self) -> float:
        """How long the oldest row of this process has waited for the database (0 when none waits)."""
        with self._lock:  # the answer path adds to it meanwhile: never iterate it unlocked
            oldest = min(self._first_append.values(), default=None)
        return 0.0 if oldest is None else time.monotonic() - oldest

    def _rotate(self) -> None:
        """Start a new file, so the drainer can take the current one whole while appends go on. A current file
        deleted or replaced under the worker is read back through its descriptor and its rows held."""
        with self._lock:
            if self._fd is None or self._current_rows == 0:
                return
            fd, path = self._fd, self.path
            self._fd = None
            self._sequence += 1
            self._current_rows = 0
            try:
                if not _still_named(path, fd):
                    self._read_back(fd, path)
            finally:
                os.close(fd)

    def _read_back(self, fd: int, path: Path) -> None:
        """The rows of an own file that is no longer in the folder: held, to be written by this drain."""
        content = b""
        while chunk := os.pread(fd, 1 << 20, len(content)):
            content += chunk
        lines = [line for line in content.split(b"\n") if line.strip()]
        self._held.extend(lines)
        self._forget(path, len(lines))
        log.warning(
            "decision journal file removed under the worker: its rows are held and written again",
            extra={"fields": {"rows": len(lines)}},
        )

    def _forget(self, path: Path, rows: int) -> None:
        """An own file's rows now counted elsewhere (held, or written)."""
        self._first_append.pop(path, None)
        self._tracked -= len(self._ids.pop(path, []))
        self.unwritten = max(0, self.unwritten - rows)

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

    def journals_waiting(self, root: Path) -> bool:
        """Whether any replica's journal under the shared `root` holds rows the database does not have yet (a card
        answered during an outage, by this replica or one that is gone and will be drained)."""
        return root.is_dir() and any(_size(path) for path in root.glob(f"*/{_PATTERN}"))

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
        """Write every journaled or held row storage accepts; keep the rest. Returns how many rows were written.
        Raises nothing for a storage outage: the rows wait for the next drain."""
        with self._draining:
            return self._drain(store)

    def beat(self) -> None:
        """Say this replica's journal is alive (its folder's `.alive` file, touched by each drain): a replica that
        stops beating is gone, and the others drain its journal (`adopt`)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / HEARTBEAT).touch()

    def adopt(self, store: Store, root: Path, stale_seconds: float) -> int:
        """Drain the journals other replicas left under `root` (one folder each, on storage they share): a folder
        whose heartbeat is older than `stale_seconds` belongs to a replica that is gone. Each file is taken under
        its exclusive lock, so two replicas never store a row twice (and insert-or-ignore would catch it if they
        did). Returns the rows written; storage that refuses leaves the rest for the next pass."""
        moved = 0
        now = time.time()
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.resolve() != self.folder.resolve()):
            beat = folder / HEARTBEAT
            try:
                last = beat.stat().st_mtime
            except FileNotFoundError:
                last = folder.stat().st_mtime
            if now - last < stale_seconds:
                continue
            with self._draining:
                for path in sorted(folder.glob(_PATTERN), key=_order):
                    done, complete = self._drain_file(path, store)
                    moved += done
                    if not complete:
                        return moved
            if not any(folder.glob(_PATTERN)):
                log.info("drained the journal of a replica that is gone", extra={"fields": {"folder": folder.name}})
                beat.unlink(missing_ok=True)
                with contextlib.suppress(OSError):  # written to again (the replica came back), or other files: left
                    folder.rmdir()
        return moved

    def _drain(self, store: Store) -> int:
        self._rotate()
        moved = self._drain_held(store)
        self.stalled = bool(self._held)
        if self.stalled or not self.folder.is_dir():
            self._account_missing()
            return moved
        for path in list(self._drainable()):
            done, complete = self._drain_file(path, store)
            moved += done
            if not complete:
                self.stalled = True
                break  # storage is down: the newer files wait too
        self._account_missing()
        return moved

    def _drain_held(self, store: Store) -> int:
        """Held rows go to the database; while it refuses them, to the journal (the disk may be back)."""
        with self._lock:
            held, self._held = self._held, []
        if not held:
            return 0
        done = 0
        for start in range(0, len(held), BATCH_ROWS):
            try:
                self._write_batch(held[start : start + BATCH_ROWS], store)
            except SQLAlchemyError:
                break
            done = start + min(BATCH_ROWS, len(held) - start)
        left = held[done:]
        with self._lock:
            journaled = 0
            try:
                for line in left:
                    self._append(line + b"\n", _row_id(line))
                    journaled += 1
            except OSError:
                self.journal_failing = True
            self._held = left[journaled:] + self._held
        return done

    def _account_missing(self) -> None:
        """Own files drained away or gone with rows never read: those rows were removed under the worker."""
        with self._lock:  # the answer path adds files to it meanwhile: look at a copy (the disk checks unlocked)
            current = self.path
            candidates = [p for p in self._ids if p != current]
        for path in [p for p in candidates if not p.exists()]:
            with self._lock:
                ids = self._ids.pop(path, None)
                if ids is None:
                    continue
                self._tracked -= len(ids)
                self._first_append.pop(path, None)
            self._lose(ids)

    def _lose(self, ids: list[str]) -> None:
        if not ids:
            return
        with self._lock:
            self.lost += len(ids)
            self.unwritten = max(0, self.unwritten - len(ids))
        for row_id in ids:
            log.error(
                "decision row lost: removed from the journal under the worker before storage took it",
                extra={"fields": {"decision_id": row_id}},
            )

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
            if _owner(path) == self.pid and path in self._ids:
                found = {_row_id(line) for line in lines}
                self._lose([row_id for row_id in self._ids[path] if row_id not in found])  # the file was cut short
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
            left = [row_id for line in lines[done:] if (row_id := _row_id(line)) is not None]
            with self._lock:  # the answer path counts and tracks under it too
                self.unwritten = max(0, self.unwritten - done)
                if complete:
                    self._first_append.pop(path, None)
                    self._tracked -= len(self._ids.pop(path, []))
                elif path in self._ids:
                    self._tracked += len(left) - len(self._ids[path])
                    self._ids[path] = left
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


def _row_id(line: bytes) -> str | None:
    """The id of a journal line, without decoding the rest of the row (None for a line this service did not write)."""
    match = _ID.search(line[:200])
    return match.group(1).decode() if match else None


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


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:  # drained and removed meanwhile
        return 0


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
