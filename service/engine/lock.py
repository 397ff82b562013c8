"""Released rule versions are frozen: `rules/versions.lock` holds, for every active or retired version, the content
hash of its rule file and of each value set its answer depends on, so `id@version` in a card or a decision row
always names the logic that produced it.

- The rule hash covers the version file's parsed content without `status` (retiring a version is the one edit a
  released version may take) and ignores comments and layout.
- A value set's hash covers what it matches (codes, ICD prefixes, excludes, words, profiles, unit, and the value
  sets it includes), not its description or layout. A version depends on the value sets its criteria read and the
  ones those include. A site's additions are not part of it: they are the hospital's, and named by the revision.
- An active version whose value sets changed is refused: the change must come with a new version
  (`python -m authoring rules release`). A retired version answers no call; `rules lock` re-records its value sets
  and says so.
- `python -m authoring rules lock` adds newly released versions and never rewrites a rule hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.engine.valuesets import ValueSetDef
from service.engine.yamlfile import load_yaml

LOCK_FILE = "versions.lock"
RELEASED = ("active", "retired")
_RUN = "run `python -m authoring rules lock`"
_EDITED = (
    "was released and has been edited: released versions are immutable; undo the edit and make the change "
    "in a new version (a draft first)"
)
_HEADER = (
    "# What the released (active or retired) rule versions answer with: the hash of each version's rule file and\n"
    "# of every value set it reads. Written by `python -m authoring rules lock` (and `rules release`); checked by\n"
    "# `rules check` and at start-up. Commit it.\n"
)


@dataclass(frozen=True)
class Released:
    """A loaded version as the lock sees it."""

    status: str
    rule_hash: str
    file: str
    valuesets: dict[str, str] = field(default_factory=dict)  # value set id -> fingerprint


@dataclass(frozen=True)
class LockEntry:
    rule: str
    valuesets: dict[str, str] | None  # None: locked before value sets were (`rules lock` records them)


def content_hash(raw: dict[str, Any]) -> str:
    logic = {k: v for k, v in raw.items() if k != "status"}
    return _digest(logic)


def _digest(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def valueset_fingerprint(vs: ValueSetDef) -> str:
    """What the value set matches, hashed: a description or a source note may change, a code may not."""
    return _digest(
        {
            "codes": sorted(vs.codes),
            "prefixes": sorted(vs.prefixes),
            "excluded_codes": sorted(vs.excluded_codes),
            "excluded_prefixes": sorted(vs.excluded_prefixes),
            "includes": sorted(vs.includes),
            "text_terms": vs.text_terms,
            "text_patterns": vs.text_patterns,
            "text_not": vs.text_not,
            "profiles": vs.profiles,
            "unit": vs.unit,
        }
    )


def depends_on(
    read: Iterable[str], valuesets: dict[str, ValueSetDef], known: dict[str, str] | None = None
) -> dict[str, str]:
    """{value set id: fingerprint} of the value sets read and every one they include, however deeply. `known`
    keeps fingerprints already taken (one per value set for all the versions of a load)."""
    known = {} if known is None else known
    by_url = {vs.url: vs.id for vs in valuesets.values()}
    found: dict[str, str] = {}
    todo = [vs_id for vs_id in read if vs_id in valuesets]
    while todo:
        vs_id = todo.pop()
        if vs_id in found:
            continue
        if vs_id not in known:
            known[vs_id] = valueset_fingerprint(valuesets[vs_id])
        found[vs_id] = known[vs_id]
        todo += [by_url[url] for url in valuesets[vs_id].includes if url in by_url]
    return dict(sorted(found.items()))


def read_lock(root: Path) -> dict[str, LockEntry] | None:
    """The lock's entries, or None when the lock file does not exist. An entry may be a bare rule hash (a lock
    written before value sets were locked)."""
    path = root / LOCK_FILE
    if not path.is_file():
        return None
    data = load_yaml(path) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{LOCK_FILE} must map rule@version to its hashes")
    entries = {}
    for ref, value in data.items():
        entry = value if isinstance(value, dict) else {}
        if isinstance(value, str):
            entries[str(ref)] = LockEntry(value, None)
        elif isinstance(entry.get("rule"), str) and isinstance(entry.get("valuesets"), dict):
            entries[str(ref)] = LockEntry(entry["rule"], {str(k): str(v) for k, v in entry["valuesets"].items()})
        else:
            raise ValueError(f"{LOCK_FILE}: {ref} must have `rule` and `valuesets`")
    return entries


def _changed(entry: LockEntry, now: Released) -> list[str]:
    if entry.valuesets is None:
        return []
    ids = set(entry.valuesets) | set(now.valuesets)
    return sorted(i for i in ids if entry.valuesets.get(i) != now.valuesets.get(i))


def lock_problems(lock: dict[str, LockEntry] | None, released: dict[str, Released]) -> list[tuple[str, str]]:
    """(ref, problem) for each released version that differs from, or is missing in, the lock (its rule file, or
    for an active version the value sets it reads), and each locked version that is gone or back to draft."""
    if lock is None:
        return [("", f"missing rules/{LOCK_FILE}: {_RUN} and commit it")]
    problems = []
    for ref, now in sorted(released.items()):
        entry = lock.get(ref)
        if now.status not in RELEASED:
            if entry is not None:
                problems.append((ref, f"{ref} was released and cannot go back to {now.status}: make a new version"))
            continue
        if entry is None:
            problems.append((ref, f"{ref} is {now.status} but not in rules/{LOCK_FILE}: {_RUN}"))
        elif entry.rule != now.rule_hash:
            problems.append((ref, f"{ref} {_EDITED}"))
        elif now.status == "active" and entry.valuesets is None:
            problems.append((ref, f"{ref}: the value sets it reads are not in rules/{LOCK_FILE} yet: {_RUN}"))
        elif now.status == "active" and (changed := _changed(entry, now)):
            rule_id, version = ref.split("@", 1)
            problems.append(
                (
                    ref,
                    f"{ref} is active and value set(s) {', '.join(changed)} it reads changed since it was released: "
                    "a released version is frozen, so the change would alter its answers. Undo the change, or make "
                    f"a new version that takes it: copy {version}.yaml to a draft with a higher version, then "
                    f"`python -m authoring rules release {rule_id} NEW_VERSION`",
                )
            )
    for ref in sorted(set(lock) - set(released)):
        problems.append(
            (ref, f"{ref} is in rules/{LOCK_FILE} but its file is gone: keep released versions (retire them)")
        )
    return problems


@dataclass
class LockUpdate:
    lock: dict[str, LockEntry]
    added: list[str]  # newly released versions
    recorded: list[str]  # versions whose value sets were recorded for the first time
    relocked: dict[str, list[str]]  # retired versions -> the value sets that changed under them


def updated_lock(lock: dict[str, LockEntry] | None, released: dict[str, Released]) -> LockUpdate:
    """The lock with every newly released version added, and value sets recorded where missing or (for retired
    versions, which answer no call) changed. Raises ValueError, listing them, when a locked rule file changed or an
    active version's value sets did: the lock never hides an edit."""
    current = dict(lock or {})
    edited = [ref for ref, now in released.items() if ref in current and current[ref].rule != now.rule_hash]
    if edited:
        raise ValueError(f"released versions were edited (make new versions instead): {', '.join(sorted(edited))}")
    moved = [
        f"{ref} ({', '.join(_changed(current[ref], now))})"
        for ref, now in sorted(released.items())
        if ref in current and now.status == "active" and _changed(current[ref], now)
    ]
    if moved:
        raise ValueError(
            "value sets of active versions changed (release new versions with `rules release`): " + "; ".join(moved)
        )
    update = LockUpdate(current, [], [], {})
    for ref, now in sorted(released.items()):
        if now.status not in RELEASED:
            continue
        entry = current.get(ref)
        if entry is None:
            update.added.append(ref)
        elif entry.valuesets is None:
            update.recorded.append(ref)
        elif changed := _changed(entry, now):
            update.relocked[ref] = changed
        else:
            continue
        current[ref] = LockEntry(now.rule_hash, now.valuesets)
    return update


def render_lock(lock: dict[str, LockEntry]) -> str:
    body = []
    for ref in sorted(lock):
        entry = lock[ref]
        if entry.valuesets is None:
            body.append(f"{ref}: {entry.rule}\n")
            continue
        body.append(f"{ref}:\n  rule: {entry.rule}\n  valuesets:\n")
        body += [f"    {vs_id}: {digest}\n" for vs_id, digest in sorted(entry.valuesets.items())]
    return _HEADER + "".join(body)


def write_lock(root: Path, lock: dict[str, LockEntry]) -> Path:
    path = root / LOCK_FILE
    path.write_text(render_lock(lock), encoding="utf-8")
    return path
