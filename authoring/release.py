"""Releasing a rule version, in one command: `python -m authoring rules release RULE VERSION`.

A release is several edits that must agree, and a forgotten one fails the test suite or, worse, serves a version
nobody locked: the draft becomes active, the active version retired, the lock records both, the changelog gets the
new version's entry, the examples that pin the rule move to the new version, and their expected answers are
rebuilt. Each step is checked before anything is written, and nothing is written when one fails.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from service.engine.lock import LOCK_FILE, read_lock, updated_lock, write_lock


def lock_rules(rules: Path) -> int:
    """`rules lock`: record newly released versions (and value sets not yet recorded) in versions.lock."""
    from service.engine.loader import load_ruleset, released_versions
    from service.errors import RuleSetInvalid

    try:
        ruleset = load_ruleset(rules, None, strict=False)  # the lock is about rules/ alone, never a site
        update = updated_lock(read_lock(ruleset.root), released_versions(ruleset.rules, ruleset.codes.valuesets))
    except RuleSetInvalid as error:
        print(error, file=sys.stderr)
        return 1
    except ValueError as error:
        print(f"rules/{LOCK_FILE}: {error}", file=sys.stderr)
        return 1
    write_lock(ruleset.root, update.lock)
    for ref in update.added:
        print(f"locked {ref}")
    for ref in update.recorded:
        print(f"recorded the value sets of {ref}")
    for ref, changed in update.relocked.items():
        print(f"retired {ref}: value sets changed under it, recorded again: {', '.join(changed)}")
    nothing = not (update.added or update.recorded or update.relocked)
    print(f"rules/{LOCK_FILE}: {len(update.lock)} released versions" + (" (nothing new)" if nothing else ""))
    return 0


_STATUS = re.compile(r"^status:[ \t]*(\w+)[ \t]*(#.*)?$", re.MULTILINE)
_VERSION = re.compile(r"^version:[ \t]*\S+[ \t]*(#.*)?$", re.MULTILINE)


class ReleaseError(ValueError):
    """Why a release cannot be made; nothing has been written."""


def semver(version: str) -> tuple[int, int, int]:
    major, minor, patch = (int(part) for part in version.split("."))
    return major, minor, patch


def _with_status(text: str, status: str) -> str:
    if len(_STATUS.findall(text)) != 1:
        raise ReleaseError("the version file must have exactly one top-level `status:` line")
    return _STATUS.sub(f"status: {status}", text, count=1)


def draft_from_active(rules: Path, rule_id: str, version: str, today: date) -> list[Path]:
    """`rules draft RULE VERSION`: a copy of the active version as a draft with this version number, and a
    changelog entry to fill in; the way to take a value-set change into a new version."""
    from service.engine.loader import load_ruleset
    from service.errors import RuleSetInvalid

    try:
        ruleset = load_ruleset(rules, None, strict=False)
    except RuleSetInvalid as error:
        raise ReleaseError(str(error)) from None
    active = ruleset.version(rule_id)
    if active is None:
        raise ReleaseError(f"{rule_id} has no active version to copy")
    _check_newer(version, active.version, rule_id)
    target = rules / rule_id / f"{version}.yaml"
    if target.exists():
        raise ReleaseError(f"rules/{rule_id}/{version}.yaml already exists")
    text = (rules / rule_id / f"{active.version}.yaml").read_text(encoding="utf-8")
    if len(_VERSION.findall(text)) != 1:
        raise ReleaseError("the active version file must have exactly one top-level `version:` line")
    text = _with_status(_VERSION.sub(f"version: {version}", text, count=1), "draft")
    changelog = rules / rule_id / "CHANGELOG.md"
    entry = f"## {version} ({today.isoformat()})\n\n- TODO: what changes for patients, and why (the source).\n\n"
    target.write_text(text, encoding="utf-8")
    changelog.write_text(_insert_entry(changelog.read_text(encoding="utf-8"), entry), encoding="utf-8")
    return [target, changelog]


def _check_newer(version: str, current: str, rule_id: str) -> None:
    try:
        newer = semver(version) > semver(current)
    except ValueError:
        raise ReleaseError(f"{version!r} is not MAJOR.MINOR.PATCH") from None
    if not newer:
        raise ReleaseError(f"{rule_id}@{version} must be higher than the active {current}")


def _insert_entry(changelog: str, entry: str) -> str:
    """The entry above the newest one (after the title and the lines under it)."""
    at = changelog.find("\n## ")
    return changelog + "\n" + entry if at < 0 else changelog[: at + 1] + entry + changelog[at + 1 :]


@dataclass
class Release:
    rule_id: str
    version: str
    retired: str | None
    written: list[Path] = field(default_factory=list)


def release(rules: Path, examples: Path, rule_id: str, version: str) -> Release:
    """Draft -> active, the active version -> retired, the lock, the examples' pins and expected answers. Checked
    first (the draft exists, is newer, has its changelog entry, its rule tests pass, the result loads as served);
    every file is restored when a step fails."""
    from authoring.ruletests import run_rule_tests
    from service.engine.loader import load_ruleset
    from service.errors import RuleSetInvalid

    try:
        before = load_ruleset(rules, None, strict=False)
    except RuleSetInvalid as error:
        raise ReleaseError(str(error)) from None
    draft = before.version(rule_id, version)
    if draft is None:
        raise ReleaseError(f"no rules/{rule_id}/{version}.yaml (make one with `rules draft {rule_id} {version}`)")
    if draft.spec.status != "draft":
        raise ReleaseError(f"{rule_id}@{version} is {draft.spec.status}, not a draft")
    active = before.version(rule_id)
    if active is not None:
        _check_newer(version, active.version, rule_id)
    changelog = (rules / rule_id / "CHANGELOG.md").read_text(encoding="utf-8")
    if not re.search(rf"^## {re.escape(version)}\b", changelog, re.MULTILINE) or "TODO" in _entry(changelog, version):
        raise ReleaseError(f"rules/{rule_id}/CHANGELOG.md needs its `## {version}` entry written (no TODO left)")
    failed = [r for r in run_rule_tests(before) if r.rule_id == rule_id and r.version == version and not r.passed]
    if failed:
        raise ReleaseError(
            f"{len(failed)} rule test(s) of {rule_id}@{version} fail: {failed[0].name}: {failed[0].message}"
        )

    result = Release(rule_id, version, active.version if active is not None else None)
    originals: dict[Path, str | None] = {}  # what to put back if a step fails (None: remove the file)

    def write(path: Path, text: str) -> None:
        originals.setdefault(path, path.read_text(encoding="utf-8") if path.exists() else None)
        path.write_text(text, encoding="utf-8")
        result.written.append(path)

    try:
        draft_file = rules / rule_id / f"{version}.yaml"
        write(draft_file, _with_status(draft_file.read_text(encoding="utf-8"), "active"))
        if active is not None:
            old = rules / rule_id / f"{active.version}.yaml"
            write(old, _with_status(old.read_text(encoding="utf-8"), "retired"))
            pins = examples / "examples.yaml"
            text = pins.read_text(encoding="utf-8")
            moved = re.sub(rf"\b{re.escape(rule_id)}@{re.escape(active.version)}\b", f"{rule_id}@{version}", text)
            if moved != text:
                write(pins, moved)
        lock = rules / "versions.lock"
        originals.setdefault(lock, lock.read_text(encoding="utf-8") if lock.exists() else None)
        if lock_rules(rules) != 0:
            raise ReleaseError("the lock could not be written (see above)")
        result.written.append(lock)
        load_ruleset(rules)  # as the service will load it
        from authoring.examples import build_all

        for path in [
            examples / "README.md",
            *sorted(examples.glob("requests/*.json")),
            *sorted(examples.glob("responses/*.json")),
        ]:
            originals.setdefault(path, path.read_text(encoding="utf-8"))
        for path in build_all(examples, rules):
            originals.setdefault(path, None)  # a new file: removed again if a later step fails
            result.written.append(path)
    except (ReleaseError, RuleSetInvalid, ValueError, OSError) as error:
        for path, saved in originals.items():
            if saved is None:
                path.unlink(missing_ok=True)
            else:
                path.write_text(saved, encoding="utf-8")
        raise ReleaseError(f"the release was undone: {error}") from None
    return result


def _entry(changelog: str, version: str) -> str:
    start = re.search(rf"^## {re.escape(version)}\b.*$", changelog, re.MULTILINE)
    if start is None:
        return ""
    rest = changelog[start.end() :]
    end = rest.find("\n## ")
    return rest if end < 0 else rest[:end]
