"""Released rule versions are immutable: `rules/versions.lock` holds the content hash of every active or retired
version, so `id@version` in a card or a decision row always names the logic that produced it.

The hash covers the version file's parsed content without `status` (retiring a version is the one edit a released
version may take) and ignores comments and layout. `python -m authoring rules lock` adds newly released versions and
never rewrites an entry: a released version that changed must become a new version.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

LOCK_FILE = "versions.lock"
RELEASED = ("active", "retired")
Released = dict[str, tuple[str, str, str]]  # ref -> (status, content hash, file)
_RUN = "run `python -m authoring rules lock`"
_EDITED = (
    "was released and has been edited: released versions are immutable; undo the edit and make the change "
    "in a new version (a draft first)"
)
_HEADER = (
    "# Content hashes of the released (active or retired) rule versions: they may never change.\n"
    "# Written by `python -m authoring rules lock`; checked by `rules check` and at start-up. Commit it.\n"
)


def content_hash(raw: dict[str, Any]) -> str:
    logic = {k: v for k, v in raw.items() if k != "status"}
    canonical = json.dumps(logic, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def read_lock(root: Path) -> dict[str, str] | None:
    """`{"rule@version": hash}`, or None when the lock file does not exist."""
    path = root / LOCK_FILE
    if not path.is_file():
        return None
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise ValueError(f"{LOCK_FILE} must map rule@version to its hash")
    return dict(data)


def lock_problems(lock: dict[str, str] | None, released: Released) -> list[tuple[str, str]]:
    """(ref, problem) for each released version that differs from, or is missing in, the lock, and each locked
    version that is gone or back to draft. `released` maps ref -> (status, hash, file) for every version loaded."""
    if lock is None:
        return [("", f"missing rules/{LOCK_FILE}: {_RUN} and commit it")]
    problems = []
    for ref, (status, digest, _) in sorted(released.items()):
        locked = lock.get(ref)
        if status not in RELEASED:
            if locked is not None:
                problems.append((ref, f"{ref} was released and cannot go back to {status}: make a new version"))
            continue
        if locked is None:
            problems.append(
                (ref, f"{ref} is {status} but not in rules/{LOCK_FILE}: run `python -m authoring rules lock`")
            )
        elif locked != digest:
            problems.append((ref, f"{ref} {_EDITED}"))
    for ref in sorted(set(lock) - set(released)):
        problems.append(
            (ref, f"{ref} is in rules/{LOCK_FILE} but its file is gone: keep released versions (retire them)")
        )
    return problems


def updated_lock(
    lock: dict[str, str] | None, released: dict[str, tuple[str, str, str]]
) -> tuple[dict[str, str], list[str]]:
    """The lock with every newly released version added, and the refs added. Raises ValueError, listing them, when
    a locked version changed: the lock never hides an edit."""
    current = dict(lock or {})
    changed = [ref for ref, (status, digest, _) in released.items() if ref in current and current[ref] != digest]
    if changed:
        raise ValueError(f"released versions were edited (make new versions instead): {', '.join(sorted(changed))}")
    added = sorted(ref for ref, (status, _, _) in released.items() if status in RELEASED and ref not in current)
    for ref in added:
        current[ref] = released[ref][1]
    return current, added


def write_lock(root: Path, lock: dict[str, str]) -> Path:
    path = root / LOCK_FILE
    body = "".join(f"{ref}: {lock[ref]}\n" for ref in sorted(lock))
    path.write_text(_HEADER + body, encoding="utf-8")
    return path
