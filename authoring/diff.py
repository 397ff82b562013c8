"""What a rule change does: every example patient evaluated with the base rule set (a git revision) and the
working one, side by side. Rule authors run it before they commit (`python -m authoring rules diff`)."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from service.config import PROJECT_ROOT
from service.engine.evaluation import evaluate_bundle
from service.engine.loader import load_ruleset
from service.engine.ruleset import RuleSet
from service.engine.yamlfile import load_yaml
from service.errors import RuleSetInvalid


@dataclass
class Outcome:
    clinical: str  # what a clinician would see: indicator, rules, evidence, orders offered
    versions: str  # which rule versions said so

    def __str__(self) -> str:
        return f"{self.clinical}  ({self.versions})" if self.versions else self.clinical


@dataclass
class ExampleChange:
    example: str
    before: Outcome
    after: Outcome

    @property
    def changed(self) -> bool:
        return self.before.clinical != self.after.clinical

    @property
    def version_only(self) -> bool:
        return not self.changed and self.before.versions != self.after.versions


def outcome(ruleset: RuleSet | None, bundle: Path, now: datetime) -> Outcome:
    """Which active rules fire, with their evidence and the orders the card would offer, or `no card`."""
    if ruleset is None:
        return Outcome("(base rule set invalid)", "")
    evaluation = evaluate_bundle(ruleset, json.loads(bundle.read_text(encoding="utf-8")), now)
    unreadable = sorted(s.reference for s in evaluation.unreadable)
    could_not_read = f"could not read [{', '.join(unreadable)}]" if unreadable else ""
    lead = evaluation.lead
    if lead is None:
        notice = f"{ruleset.config.unreadable_card.indicator}: {could_not_read}" if unreadable else "no card"
        return Outcome(notice, "")
    parts = [f"{d.rule.id} [{', '.join(sorted(f.reference for f in d.evidence))}]" for d in evaluation.fired]
    offered = ", ".join(evaluation.offered_orders) or "nothing"
    clinical = f"{lead.rule.spec.card.indicator}: " + "; ".join(parts) + f"; offers {offered}"
    if could_not_read:
        clinical += f"; {could_not_read}"
    return Outcome(clinical, ", ".join(d.ref for d in evaluation.fired))


def _ruleset_at(revision: str, rules_dir: Path, workdir: Path, site_dir: Path | None = None) -> RuleSet | None:
    relative = rules_dir.resolve().relative_to(PROJECT_ROOT)
    archive = subprocess.run(  # noqa: S603 - fixed argv, revision passed as one argument
        ["git", "-C", str(PROJECT_ROOT), "archive", "--format=tar", revision, "--", str(relative)],  # noqa: S607
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(workdir, filter="data")
    try:
        return load_ruleset(workdir / relative, site_dir, strict=False)  # its logic; it may predate the lock
    except RuleSetInvalid:
        return None


def diff_against_git(
    rules_dir: Path, base: str, examples_dir: Path, site_dir: Path | None = None
) -> list[ExampleChange]:
    """Every example patient under the rules at `base` and the working rules, both with the same site codes."""
    manifest = load_yaml(examples_dir / "examples.yaml")
    now = datetime.fromisoformat(manifest["now"])
    current = load_ruleset(rules_dir, site_dir)
    with tempfile.TemporaryDirectory() as tmp:
        before = _ruleset_at(base, rules_dir, Path(tmp), site_dir)
    changes = []
    for example in manifest["examples"]:
        bundle = examples_dir / "patients" / f"{example['id']}.json"
        changes.append(ExampleChange(example["id"], outcome(before, bundle, now), outcome(current, bundle, now)))
    return changes


def print_diff(changes: list[ExampleChange], base: str) -> None:
    changed = [c for c in changes if c.changed]
    for c in changes:
        if c.changed:
            print(f"CHANGED  {c.example}\n    {base}: {c.before}\n    now: {c.after}")
        elif c.version_only:
            print(f"version  {c.example}: {c.after.clinical}  ({c.before.versions} -> {c.after.versions})")
        else:
            print(f"same     {c.example}: {c.after}")
    versions = sum(c.version_only for c in changes)
    print(
        f"\n{len(changed)} of {len(changes)} example patients change clinically against {base}"
        f" ({versions} more fire the same way under a new rule version)"
    )
