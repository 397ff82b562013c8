"""A release is one command: draft to active, the active version retired, the lock, the changelog checked, the
examples' pins and expected answers rebuilt; refused (nothing written) when a step cannot be made."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from authoring.__main__ import main
from service.config import PROJECT_ROOT
from service.engine.loader import load_ruleset
from service.engine.lock import read_lock
from service.errors import RuleSetInvalid
from tests.helpers import active_ref, active_version, copy_rules, next_minor

PAIN = "spinal-metastasis-pain"


@pytest.fixture
def work(tmp_path: Path) -> tuple[Path, Path]:
    rules = copy_rules(tmp_path)
    examples = tmp_path / "fhir_examples"
    shutil.copytree(PROJECT_ROOT / "fhir_examples", examples, ignore=shutil.ignore_patterns("realdata"))
    return rules, examples


def release(rules: Path, examples: Path, version: str) -> int:
    return main(["rules", "release", PAIN, version, "--rules", str(rules), "--examples", str(examples)])


def snapshot(*folders: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()}


def fill_changelog(rules: Path, text: str) -> None:
    changelog = rules / PAIN / "CHANGELOG.md"
    changelog.write_text(
        changelog.read_text().replace("- TODO: what changes for patients, and why (the source).", text)
    )


def test_a_draft_is_released_in_one_command(work: tuple[Path, Path], capsys) -> None:
    rules, examples = work
    old, new = active_version(PAIN), next_minor(PAIN)
    assert main(["rules", "draft", PAIN, new, "--rules", str(rules)]) == 0
    assert (rules / PAIN / f"{new}.yaml").read_text().count("status: draft") == 1
    before = snapshot(rules, examples)
    assert release(rules, examples, new) == 1  # the changelog entry is still a TODO
    assert "needs its `## " in capsys.readouterr().err
    assert snapshot(rules, examples) == before
    fill_changelog(rules, "- MINOR: a release rehearsal, no change in logic.")
    assert release(rules, examples, new) == 0
    assert f"released {PAIN}@{new}, {PAIN}@{old} retired" in capsys.readouterr().out
    ruleset = load_ruleset(rules)  # as served: locked, valid
    assert ruleset.version(PAIN).version == new  # type: ignore[union-attr]
    assert ruleset.version(PAIN, old).spec.status == "retired"  # type: ignore[union-attr]
    assert f"{PAIN}@{new}" in (read_lock(rules) or {})
    pins = (examples / "examples.yaml").read_text()
    assert f"{PAIN}@{new}" in pins
    assert f"{PAIN}@{old}" not in pins
    response = json.loads((examples / "responses" / "03-prostate-cancer-bone-mets-new-back-pain.json").read_text())
    assert response["cards"][0]["extension"]["org.mscc-cds.decision"]["rules"] == [f"{PAIN}@{new}"]
    assert active_ref("mscc-suspected") in (examples / "examples.yaml").read_text()  # other rules untouched


@pytest.mark.parametrize(
    ("version", "said"),
    [("0.0.1", "must be higher than the active"), ("9.0.0", "no rules/spinal-metastasis-pain/9.0.0.yaml")],
)
def test_a_release_that_cannot_be_made_writes_nothing(work: tuple[Path, Path], version: str, said: str, capsys) -> None:
    rules, examples = work
    if version == "0.0.1":
        (rules / PAIN / "0.0.1.yaml").write_text(
            (rules / PAIN / f"{active_version(PAIN)}.yaml")
            .read_text()
            .replace(f"version: {active_version(PAIN)}", "version: 0.0.1")
            .replace("status: active", "status: draft")
        )
        changelog = rules / PAIN / "CHANGELOG.md"
        changelog.write_text(changelog.read_text() + "\n## 0.0.1\n\n- an older number\n")
    before = snapshot(rules, examples)
    assert release(rules, examples, version) == 1
    assert said in capsys.readouterr().err
    assert snapshot(rules, examples) == before


def test_a_step_that_fails_midway_undoes_every_file(work: tuple[Path, Path], capsys) -> None:
    rules, examples = work
    new = next_minor(PAIN)
    assert main(["rules", "draft", PAIN, new, "--rules", str(rules)]) == 0
    fill_changelog(rules, "- MINOR: rehearsal.")
    (examples / "patients" / "09-no-cancer-low-back-pain-only.json").unlink()  # the examples cannot be rebuilt
    before = snapshot(rules, examples)
    assert release(rules, examples, new) == 1
    assert "the release was undone" in capsys.readouterr().err
    assert snapshot(rules, examples) == before


def test_a_value_set_change_ships_as_a_new_version(work: tuple[Path, Path]) -> None:
    """The author's path for a change to a shared value set: refused while it would alter the active version,
    accepted once a new version takes it."""
    rules, examples = work
    path = rules / "valuesets" / "pain-severity-score.json"
    raw = json.loads(path.read_text())
    raw["compose"]["include"].append({"system": "http://loinc.org", "concept": [{"code": "75893-8"}]})
    path.write_text(json.dumps(raw, indent=2))
    with pytest.raises(RuleSetInvalid, match="pain-severity-score it reads changed"):
        load_ruleset(rules)
    new = next_minor(PAIN)
    assert main(["rules", "draft", PAIN, new, "--rules", str(rules)]) == 0
    fill_changelog(rules, "- MINOR: LOINC 75893-8 joins the pain scores.")
    assert release(rules, examples, new) == 0
    assert load_ruleset(rules).version(PAIN).version == new  # type: ignore[union-attr]
