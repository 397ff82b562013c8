"""Released rule versions never change: an edit is refused at `rules check` and start-up, and must become a new
version; retiring is the one change a released version takes. A new rule may start as a draft."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from authoring.__main__ import main
from service.engine.loader import load_ruleset
from service.engine.lock import LockEntry, Released, lock_problems, read_lock, updated_lock, write_lock
from service.errors import RuleSetInvalid
from tests.helpers import active_file, active_ref, active_version, new_version, next_minor

PAIN = "spinal-metastasis-pain"
RULE = active_file(PAIN)  # the active version's file
ACTIVE, NEXT = active_ref(PAIN), f"{PAIN}@{next_minor(PAIN)}"


def problems(rules: Path) -> list[str]:
    with pytest.raises(RuleSetInvalid) as refused:
        load_ruleset(rules)
    return [str(p) for p in refused.value.problems]


def edit(rules: Path, name: str, change) -> None:
    path = rules / name
    path.write_text(change(path.read_text(encoding="utf-8")), encoding="utf-8")


def test_editing_the_logic_of_a_released_version_is_refused(rules: Path) -> None:
    edit(rules, RULE, lambda t: t.replace("mri_recent_window: P14D", "mri_recent_window: P1D"))
    [problem] = problems(rules)
    assert problem.startswith(f"rules/{RULE}: ")
    assert f"{ACTIVE} was released and has been edited" in problem
    assert "new version" in problem


def test_comments_layout_and_retiring_are_not_edits(rules: Path) -> None:
    edit(rules, RULE, lambda t: "# reviewed 2026-12-01\n" + t.replace("status: active", "status: retired"))
    ruleset = load_ruleset(rules)
    assert ruleset.version("spinal-metastasis-pain") is None  # retired: no active version, which is allowed


def test_a_released_version_cannot_go_back_to_draft_or_disappear(rules: Path) -> None:
    edit(rules, RULE, lambda t: t.replace("status: active", "status: draft"))
    (rules / "mscc-suspected/1.0.0.yaml").unlink()
    found = problems(rules)
    assert any(f"{ACTIVE} was released and cannot go back to draft" in p for p in found)
    assert any("mscc-suspected@1.0.0 is in rules/versions.lock but its file is gone" in p for p in found)


def seven_day_window(rules: Path, status: str) -> None:
    new_version(rules, PAIN, status, lambda text: text.replace("P14D", "P7D"))


def test_a_new_release_needs_the_lock_and_rules_lock_adds_it(rules: Path, capsys) -> None:
    seven_day_window(rules, "active")
    assert any(f"{NEXT} is active but not in rules/versions.lock" in p for p in problems(rules))
    assert main(["rules", "lock", "--rules", str(rules)]) == 0
    assert f"locked {NEXT}" in capsys.readouterr().out
    assert load_ruleset(rules).version(PAIN).version == next_minor(PAIN)  # type: ignore[union-attr]


def test_rules_lock_never_hides_an_edit(rules: Path, capsys) -> None:
    edit(rules, RULE, lambda t: t.replace("P14D", "P1D"))
    before = (rules / "versions.lock").read_text()
    assert main(["rules", "lock", "--rules", str(rules)]) == 1
    assert f"released versions were edited (make new versions instead): {ACTIVE}" in (capsys.readouterr().err)
    assert (rules / "versions.lock").read_text() == before


def test_the_service_refuses_to_start_on_an_edited_release(make_app, rules: Path) -> None:
    edit(rules, RULE, lambda t: t.replace("P14D", "P1D"))
    with pytest.raises(RuleSetInvalid, match="released versions are immutable"):
        make_app(rules_dir=rules)


def test_a_new_rule_may_start_as_a_draft(rules: Path) -> None:
    folder = rules / "mscc-draft-rule"
    shutil.copytree(rules / "spinal-metastasis-pain", folder)
    for path in folder.glob("*.yaml"):
        path.unlink()
    text = (rules / RULE).read_text().replace("id: spinal-metastasis-pain", "id: mscc-draft-rule")
    (folder / "0.1.0.yaml").write_text(
        text.replace(f"version: {active_version(PAIN)}", "version: 0.1.0").replace("status: active", "status: draft")
    )
    (folder / "CHANGELOG.md").write_text("# mscc-draft-rule\n\n## 0.1.0\n\n- first draft\n")
    edit(
        rules,
        "ruleset.yaml",
        lambda t: t.replace("  - spinal-metastasis-pain\n", "  - spinal-metastasis-pain\n  - mscc-draft-rule\n"),
    )
    ruleset = load_ruleset(rules)
    assert ruleset.version("mscc-draft-rule") is None
    assert ruleset.version("mscc-draft-rule", "0.1.0").spec.status == "draft"  # type: ignore[union-attr]
    assert "mscc-draft-rule@0.1.0" not in [r.ref for r in ruleset.active()]


def test_a_yml_version_is_named_and_one_error_causes_no_other(rules: Path) -> None:
    shutil.copy(rules / RULE, rules / f"{PAIN}/{next_minor(PAIN)}.yml")
    edit(rules, active_file("mscc-suspected"), lambda t: t.replace("title:", "titel:", 1))
    found = problems(rules)
    assert any(
        p.startswith(f"rules/{PAIN}/{next_minor(PAIN)}.yml: ") and f"rename it to {next_minor(PAIN)}.yaml" in p
        for p in found
    )
    assert not any("active" in p for p in found), found  # no false "found 0 active" after a broken file


def add_generic_warning_rule(rules: Path, rule_id: str = "aaa-back-pain") -> None:
    """A new rule at the same urgency as spinal-metastasis-pain whose name sorts first, as in the trial."""
    folder = rules / rule_id
    shutil.copytree(rules / "spinal-metastasis-pain", folder)
    for path in folder.glob("*.yaml"):
        path.unlink()
    text = (rules / RULE).read_text().replace("id: spinal-metastasis-pain", f"id: {rule_id}")
    (folder / "1.0.0.yaml").write_text(text.replace(f"version: {active_version(PAIN)}", "version: 1.0.0"))
    (folder / "CHANGELOG.md").write_text(f"# {rule_id}\n\n## 1.0.0\n\n- new\n")


def test_a_new_rule_must_be_placed_in_the_precedence_never_alphabetically(rules: Path) -> None:
    add_generic_warning_rule(rules)
    found = problems(rules)
    assert any("ruleset.yaml:9: precedence: rule 'aaa-back-pain' is not listed" in p for p in found), found


def test_the_precedence_decides_which_rule_of_the_same_urgency_leads(rules: Path) -> None:
    add_generic_warning_rule(rules)
    edit(
        rules,
        "ruleset.yaml",
        lambda t: t.replace("  - spinal-metastasis-pain\n", "  - spinal-metastasis-pain\n  - aaa-back-pain\n"),
    )
    assert main(["rules", "lock", "--rules", str(rules)]) == 0
    warnings = [r.id for r in load_ruleset(rules).active() if r.spec.card.indicator == "warning"]
    assert warnings.index("spinal-metastasis-pain") < warnings.index("aaa-back-pain")  # listed first, leads


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (
            lambda t: t.replace("  - spinal-metastasis-pain\n", "  - spinal-metastasis-pain\n  - no-such-rule\n"),
            "'no-such-rule' is not a rule folder",
        ),
        (
            lambda t: t.replace("  - spinal-metastasis-pain\n", "  - spinal-metastasis-pain\n  - mscc-suspected\n"),
            "'mscc-suspected' is listed more than once",
        ),
    ],
    ids=["unknown", "twice"],
)
def test_a_wrong_precedence_is_refused(rules: Path, change, said: str) -> None:
    edit(rules, "ruleset.yaml", change)
    assert any(said in p for p in problems(rules))


# Released means frozen: the value sets a version reads are locked with it --------------------------------------


def add_code(rules: Path, valueset: str, system: str, code: str) -> None:
    path = rules / "valuesets" / f"{valueset}.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw["compose"]["include"].append({"system": system, "concept": [{"code": code}]})
    path.write_text(json.dumps(raw, indent=2), encoding="utf-8")


def test_a_value_set_change_that_would_alter_active_versions_is_refused_naming_them(rules: Path) -> None:
    add_code(rules, "spinal-pain", "http://snomed.info/sct", "22253000")  # Pain (finding): not held
    found = problems(rules)
    affected = sorted(p.split(": ", 1)[0] for p in found)
    assert affected == [
        f"rules/{active_file('mscc-suspected')}",
        f"rules/{active_file('neuro-red-flags-no-cancer')}",
        f"rules/{RULE}",
    ]
    message = next(p for p in found if RULE in p)
    assert f"{ACTIVE} is active and value set(s) spinal-pain it reads changed" in message
    assert "python -m authoring rules release spinal-metastasis-pain NEW_VERSION" in message


def test_a_value_set_change_through_an_include_is_caught_too(rules: Path) -> None:
    add_code(rules, "cancer-snomed", "http://snomed.info/sct", "203082005")  # by way of `cancer`
    assert any("value set(s) cancer-snomed it reads changed" in p for p in problems(rules))


def test_words_about_a_value_set_are_not_a_change(rules: Path) -> None:
    path = rules / "valuesets" / "spinal-pain.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw["description"] += " Reviewed again 2026-12-05."
    path.write_text(json.dumps(raw, indent=4), encoding="utf-8")
    load_ruleset(rules)


def test_rules_lock_refuses_a_value_set_change_under_an_active_version(rules: Path, capsys) -> None:
    add_code(rules, "spinal-pain", "http://snomed.info/sct", "22253000")
    before = (rules / "versions.lock").read_text()
    assert main(["rules", "lock", "--rules", str(rules)]) == 1
    assert "value sets of active versions changed" in capsys.readouterr().err
    assert (rules / "versions.lock").read_text() == before


def test_a_lock_from_before_value_sets_were_locked_asks_for_rules_lock(rules: Path, capsys) -> None:
    lock = read_lock(rules)
    assert lock is not None
    write_lock(rules, {ref: LockEntry(entry.rule, None) for ref, entry in lock.items()})
    found = problems(rules)
    assert len(found) == 3  # the active versions; retired ones answer no call
    assert all("the value sets it reads are not in rules/versions.lock yet" in p for p in found)
    assert main(["rules", "lock", "--rules", str(rules)]) == 0
    assert f"recorded the value sets of {active_ref('mscc-suspected')}" in capsys.readouterr().out
    assert read_lock(rules) == lock


def test_a_retired_version_takes_a_value_set_change_and_rules_lock_says_so() -> None:
    locked = {
        "r@1.0.0": LockEntry("sha256:r1", {"vs": "sha256:old"}),
        "r@2.0.0": LockEntry("sha256:r2", {"vs": "sha256:new"}),
    }
    now = {
        "r@1.0.0": Released("retired", "sha256:r1", "rules/r/1.0.0.yaml", {"vs": "sha256:new"}),
        "r@2.0.0": Released("active", "sha256:r2", "rules/r/2.0.0.yaml", {"vs": "sha256:new"}),
    }
    assert lock_problems(locked, now) == []
    update = updated_lock(locked, now)
    assert update.relocked == {"r@1.0.0": ["vs"]}
    assert update.lock["r@1.0.0"] == LockEntry("sha256:r1", {"vs": "sha256:new"})
    assert update.added == []
