"""Released rule versions never change: an edit is refused at `rules check` and start-up, and must become a new
version; retiring is the one change a released version takes. A new rule may start as a draft."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from authoring.__main__ import main
from service.engine.loader import load_ruleset
from service.errors import RuleSetInvalid

RULE = "spinal-metastasis-pain/4.0.0.yaml"


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
    assert problem.startswith("rules/spinal-metastasis-pain/4.0.0.yaml: ")
    assert "spinal-metastasis-pain@4.0.0 was released and has been edited" in problem
    assert "new version" in problem


def test_comments_layout_and_retiring_are_not_edits(rules: Path) -> None:
    edit(rules, RULE, lambda t: "# reviewed 2026-12-01\n" + t.replace("status: active", "status: retired"))
    ruleset = load_ruleset(rules)
    assert ruleset.version("spinal-metastasis-pain") is None  # retired: no active version, which is allowed


def test_a_released_version_cannot_go_back_to_draft_or_disappear(rules: Path) -> None:
    edit(rules, RULE, lambda t: t.replace("status: active", "status: draft"))
    (rules / "mscc-suspected/1.0.0.yaml").unlink()
    found = problems(rules)
    assert any("spinal-metastasis-pain@4.0.0 was released and cannot go back to draft" in p for p in found)
    assert any("mscc-suspected@1.0.0 is in rules/versions.lock but its file is gone" in p for p in found)


def new_version(rules: Path, status: str) -> None:
    released = (rules / RULE).read_text()
    (rules / RULE).write_text(released.replace("status: active", "status: retired"))
    text = released.replace("version: 4.0.0", "version: 4.1.0").replace("status: active", f"status: {status}")
    (rules / "spinal-metastasis-pain/4.1.0.yaml").write_text(text.replace("P14D", "P7D"))
    edit(rules, "spinal-metastasis-pain/CHANGELOG.md", lambda t: t + "\n## 4.1.0\n\n- MRI window 7 days\n")


def test_a_new_release_needs_the_lock_and_rules_lock_adds_it(rules: Path, capsys) -> None:
    new_version(rules, "active")
    assert any("spinal-metastasis-pain@4.1.0 is active but not in rules/versions.lock" in p for p in problems(rules))
    assert main(["rules", "lock", "--rules", str(rules)]) == 0
    assert "locked spinal-metastasis-pain@4.1.0" in capsys.readouterr().out
    assert load_ruleset(rules).version("spinal-metastasis-pain").version == "4.1.0"  # type: ignore[union-attr]


def test_rules_lock_never_hides_an_edit(rules: Path, capsys) -> None:
    edit(rules, RULE, lambda t: t.replace("P14D", "P1D"))
    before = (rules / "versions.lock").read_text()
    assert main(["rules", "lock", "--rules", str(rules)]) == 1
    assert "released versions were edited (make new versions instead): spinal-metastasis-pain@4.0.0" in (
        capsys.readouterr().err
    )
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
        text.replace("version: 4.0.0", "version: 0.1.0").replace("status: active", "status: draft")
    )
    (folder / "CHANGELOG.md").write_text("# mscc-draft-rule\n\n## 0.1.0\n\n- first draft\n")
    edit(
        rules,
        "ruleset.yaml",
        lambda t: t.replace("  - spinal-metastasis-pain\n", "  - spinal-metastasis-pain\n  - mscc-draft-rule\n"),
    )
    for case_file in (folder / "tests").glob("*.yaml"):
        case_file.write_text(case_file.read_text().replace("version: 4.0.0", "version: 0.1.0"))
    ruleset = load_ruleset(rules)
    assert ruleset.version("mscc-draft-rule") is None
    assert ruleset.version("mscc-draft-rule", "0.1.0").spec.status == "draft"  # type: ignore[union-attr]
    assert "mscc-draft-rule@0.1.0" not in [r.ref for r in ruleset.active()]


def test_a_yml_version_is_named_and_one_error_causes_no_other(rules: Path) -> None:
    shutil.copy(rules / RULE, rules / "spinal-metastasis-pain/4.1.0.yml")
    edit(rules, "mscc-suspected/4.0.0.yaml", lambda t: t.replace("title:", "titel:", 1))
    found = problems(rules)
    assert any(
        p.startswith("rules/spinal-metastasis-pain/4.1.0.yml: ") and "rename it to 4.1.0.yaml" in p for p in found
    )
    assert not any("active" in p for p in found), found  # no false "found 0 active" after a broken file


def add_generic_warning_rule(rules: Path, rule_id: str = "aaa-back-pain") -> None:
    """A new rule at the same urgency as spinal-metastasis-pain whose name sorts first, as in the trial."""
    folder = rules / rule_id
    shutil.copytree(rules / "spinal-metastasis-pain", folder)
    for path in folder.glob("*.yaml"):
        path.unlink()
    text = (rules / RULE).read_text().replace("id: spinal-metastasis-pain", f"id: {rule_id}")
    (folder / "1.0.0.yaml").write_text(text.replace("version: 4.0.0", "version: 1.0.0"))
    (folder / "CHANGELOG.md").write_text(f"# {rule_id}\n\n## 1.0.0\n\n- new\n")
    for case_file in (folder / "tests").glob("*.yaml"):
        case_file.write_text(case_file.read_text().replace("version: 4.0.0", "version: 1.0.0"))


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
