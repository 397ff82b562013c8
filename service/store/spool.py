"""Decision-log rows that storage could not take yet, kept on local disk until it can.

A hook call is answered before its decision row is written; when the database is down, the row goes here (one
JSON line per row, one file per process) instead of being dropped. A drainer in each worker writes spooled rows
back when storage returns and removes them; a row id already in the database counts as written, so a row is
never stored twice, and a file is drained by one process at a time (an exclusive lock), including files a
stopped worker left behind.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from service.store.db import Store
from service.store.decisions import DecisionRecord

_PATTERN = "decisions-*.jsonl"
REJECTED = "rejected-decisions.jsonl"  # rows the database refused for good: for an operator to read
log = logging.getLogger("service.decisionlog")


def _encode(record: DecisionRecord) -> str:
    row = record.as_row()
    return json.dumps({**row, "created_at": record.created_at.isoformat()}, ensure_ascii=True)


def _decode(line: str) -> DecisionRecord:
    row: dict[str, Any] = json.loads(line)
    row["created_at"] = datetime.fromisoformat(row["created_at"])
    return DecisionRecord.from_row(row)


class DecisionSpool:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / f"decisions-{os.getpid()}.jsonl"

    def put(self, row: DecisionRecord) -> None:
        """Append one row, flushed to disk before returning; raises OSError when the disk refuses it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.write(_encode(row) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def _reject(self, line: str) -> None:
        """Keep a row the database refuses for good beside the spool, and say so (its id, never its content)."""
        with (self.folder / REJECTED).open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
        try:
            decision_id = json.loads(line).get("id")
        except ValueError:
            decision_id = None
        log.error(
            "spooled decision row refused by the database; kept in the rejected file",
            extra={"fields": {"decision_id": decision_id}},
        )

    def pending(self) -> int:
        if not self.folder.is_dir():
            return 0
        total = 0
        for path in self.folder.glob(_PATTERN):
            with path.open(encoding="utf-8") as handle:
                total += sum(1 for line in handle if line.strip())
        return total

    def drain(self, store: Store) -> int:
        """Write every spooled row storage accepts; keep the rest. Returns how many rows left the spool."""
        if not self.folder.is_dir():
            return 0
        moved = 0
        for path in sorted(self.folder.glob(_PATTERN)):
            moved += self._drain_file(path, store)
        return moved

    def _drain_file(self, path: Path, store: Store) -> int:
        with path.open("r+", encoding="utf-8") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0  # another process is draining or appending to it
            lines = [line for line in handle.read().splitlines() if line.strip()]
            done = 0
            for line in lines:
                try:
                    row = _decode(line)
                    store.write_decision(row, attempts=1)
                except IntegrityError:
                    if not store.has_decision(row.id):
                        self._reject(line)  # the database will never take it: kept apart, reported, not retried
                except SQLAlchemyError:
                    break  # storage still down: keep this row and the rest
                except (ValueError, KeyError, TypeError):
                    self._reject(line)  # not a row this service wrote
                done += 1
            remaining = lines[done:]
            handle.seek(0)
            handle.truncate()
            handle.write("".join(line + "\n" for line in remaining))
            handle.flush()
            os.fsync(handle.fileno())
        if not remaining and path != self.path and not _owner_alive(path):
            # Only a dead worker's file: a live one may have it open, waiting for the lock, and would append its
            # next row to a deleted file.
            path.unlink(missing_ok=True)
        return done


def _owner_alive(path: Path) -> bool:
    """Whether the process named in `decisions-<pid>.jsonl` is running (a file of unknown owner counts as alive)."""
    try:
        pid = int(path.stem.removeprefix("decisions-"))
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (ValueError, PermissionError):
        return True
    return True
