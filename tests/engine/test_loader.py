"""A rule set that does not validate is refused, and each problem names its file and field."""

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from service.engine.loader import load_ruleset, revision_of
from service.errors import RuleSetInvalid
from tests.helpers import active_file, active_version, new_version, next_minor

MSCC, PAIN = "mscc-suspected", "spinal-metastasis-pain"
RULE, V = active_file(MSCC), active_version(MSCC)  # the active version: its file and number


def edit(rules: Path, name: str, change: Callable[[str], str]) -> None:
    path = rules / name
    path.write_text(change(path.read_text(encoding="utf-8")), encoding="utf-8")


def problems(rules: Path) -> list[str]:
    with pytest.raises(RuleSetInvalid) as caught:
        load_ruleset(rules)
    return [str(p) for p in caught.value.problems]


def test_the_shipped_rule_set_loads(rules: Path) -> None:
    ruleset = load_ruleset(rules)
    assert {r.id for r in ruleset.active()} == {"mscc-suspected", "spinal-metastasis-pain", "neuro-red-flags-no-cancer"}
    assert len(ruleset.revision) == 12


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("status: active", "status: activ", f"rules/{RULE}:4: status: Input should be"),
        (
            "    finding: {valueset: cancer, include_resolved: true}",
            "    finding: {valueset: cancr, include_resolved: true}",
            f"rules/{RULE}:30: criteria.cancer.finding.valueset: value set 'cancr' does not exist",
        ),
        (
            "    all_of: [cancer, mscc_presentation]",
            "    all_of: [cancer, mscc_presentaton]",
            "criteria.suspected_mscc.all_of: criterion 'mscc_presentaton' is not defined",
        ),
        (
            "    any_of: [mscc_diagnosis, mscc_diagnosis_unimaged, neuro_symptom, neuro_symptom_unimaged, "
            "radicular_pain, radicular_pain_unimaged, nonspecific_sign_in_spinal_context]",
            "    any_of: [mscc_diagnosis, suspected_mscc]",
            "criteria refer to each other in a cycle",
        ),
        (f"version: {V}", "version: 0.0.1", f"version: must equal the file name ({V})"),
        (
            "  indicator: critical\n",
            "  indicator: critical\n  colour: red\n",
            "card.colour: Extra inputs are not permitted",
        ),
        (
            "    finding: {valueset: mscc-diagnoses, within: $current_window}",
            "    finding: {valueset: mscc-diagnoses, within: $curent_window}",
            "criteria.mscc_diagnosis.finding.within: parameter 'curent_window' is not defined",
        ),
        ("when: suspected_mscc", "when: mscc_presentation", "criteria.suspected_mscc: is never used"),
        ("    - order: mscc-referral", "    - order: mscc-refferal", "card.suggestions.1.order: order 'mscc-refferal'"),
        ("[mri-done-or-booked,", "[mri-done,", "card.override_reasons.0: override reason 'mri-done'"),
        ('summary: "Possible', 'summary: "' + "x" * 140 + " Possible", "card.summary: String should have at most 139"),
        ("id: mscc-suspected", "id: mscc-suspected\nid: again", "duplicate key 'id'"),
        ("  cancer:\n    description", "  cancer:\n   description: [", "not valid YAML"),
    ],
)
def test_broken_rule_files_are_refused_naming_file_field_and_problem(
    rules: Path, old: str, new: str, expected: str
) -> None:
    edit(rules, RULE, lambda text: text.replace(old, new, 1))
    found = problems(rules)
    assert any(expected in p for p in found), found


def test_two_active_versions_are_refused(rules: Path) -> None:
    new = next_minor(MSCC)
    shutil.copy(rules / RULE, rules / f"{MSCC}/{new}.yaml")
    edit(rules, f"{MSCC}/{new}.yaml", lambda t: t.replace(f"version: {V}", f"version: {new}"))
    edit(rules, f"{MSCC}/CHANGELOG.md", lambda t: t + f"\n## {new}\n\n- copy\n")
    assert any("at most one version may be active; found 2" in p for p in problems(rules))


def test_a_draft_beside_the_active_version_is_fine(rules: Path) -> None:
    new = new_version(rules, MSCC, "draft")
    ruleset = load_ruleset(rules)
    assert ruleset.version(MSCC).version == V  # type: ignore[union-attr]
    assert ruleset.version(MSCC, new).spec.status == "draft"  # type: ignore[union-attr]
    assert ruleset.version("mscc-suspected", "1.0.0").spec.status == "retired"  # type: ignore[union-attr]


def test_changelog_and_tests_are_required(rules: Path) -> None:
    (rules / "spinal-metastasis-pain/CHANGELOG.md").unlink()
    shutil.rmtree(rules / "neuro-red-flags-no-cancer/tests")
    found = problems(rules)
    assert "rules/spinal-metastasis-pain/CHANGELOG.md: missing: every rule keeps a changelog" in found
    assert any(p.startswith("rules/neuro-red-flags-no-cancer/tests: missing") for p in found)


def test_bad_regex_and_fhirpath_are_refused(rules: Path) -> None:
    edit(
        rules,
        "spinal-metastasis-pain/1.0.0.yaml",
        lambda t: t.replace(r"text_matches: '\bnight|nocturnal|\bwak(e|es|ing)\b'", "text_matches: '(night'"),
    )
    edit(
        rules,
        RULE,
        lambda t: t.replace(
            "    finding: {valueset: radicular-pain, within: $current_window}",
            "    fhirpath: {resource_type: Condition, expression: 'code.coding.where('}",
        ),
    )
    found = problems(rules)
    assert any("night_pain.finding.text_matches: not a valid regular expression" in p for p in found)
    assert any("radicular_pain.fhirpath.expression: not valid FHIRPath" in p for p in found)


@pytest.mark.parametrize(
    ("expression", "said"),
    [
        ("code.coding.where(code = '1'", "missing ')'"),  # fhirpathpy alone compiles this: always false
        ("code.codings.exists()", "CodeableConcept has no element 'codings'"),
        ("code.coding.exist()", "unknown function exist()"),
    ],
    ids=["missing-paren", "unknown-element", "unknown-function"],
)
def test_a_fhirpath_that_would_never_hold_stops_the_rule_set(rules: Path, expression: str, said: str) -> None:
    edit(
        rules,
        RULE,
        lambda t: t.replace(
            "    finding: {valueset: radicular-pain, within: $current_window}",
            f'    fhirpath: {{resource_type: Condition, expression: "{expression}"}}',
        ),
    )
    found = problems(rules)
    assert any("radicular_pain.fhirpath.expression: not valid FHIRPath" in p and said in p for p in found), found


def test_broken_value_set_and_ruleset_file(rules: Path) -> None:
    edit(rules, "valuesets/cancer.json", lambda t: t.replace('"op": "is-a"', '"op": "regex"', 1))
    edit(rules, "ruleset.yaml", lambda t: t.replace("{{context.patientId}}", "{{context.patient}}", 1))
    found = problems(rules)
    assert any(p.startswith("rules/valuesets/cancer.json:21: ValueSet.compose.include[0].filter[0]") for p in found)
    assert any("unknown prefetch token {{context.patient}}" in p for p in found)


def test_every_problem_is_reported_not_only_the_first(rules: Path) -> None:
    edit(rules, RULE, lambda t: t.replace("valueset: cancer,", "valueset: nope,"))
    edit(rules, "spinal-metastasis-pain/1.0.0.yaml", lambda t: t.replace("valueset: cancer,", "valueset: nope,"))
    assert len([p for p in problems(rules) if "'nope' does not exist" in p]) == 2


def test_revision_changes_with_rules_but_not_with_docs_or_tests(rules: Path) -> None:
    before = revision_of(rules)
    edit(rules, "mscc-suspected/CHANGELOG.md", lambda t: t + "\nmore words\n")
    edit(rules, "mscc-suspected/tests/cases.yaml", lambda t: t + "\n")
    assert revision_of(rules) == before
    edit(rules, RULE, lambda t: t.replace("Contact the", "Call the"))
    assert revision_of(rules) != before


def test_the_app_refuses_to_start_on_a_broken_rule_set(make_app, rules: Path) -> None:
    edit(rules, RULE, lambda t: t.replace("status: active", "status: maybe"))
    with pytest.raises(RuleSetInvalid):
        make_app(rules_dir=rules)


def _add_extension(rules: Path, valueset: str, extension: dict) -> None:
    path = rules / "valuesets" / f"{valueset}.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data.setdefault("extension", []).append(extension)
    path.write_text(json.dumps(data), encoding="utf-8")


def test_words_that_medspacy_cannot_use_stop_the_rule_set(rules: Path) -> None:
    pattern = "https://mscc-cds.example.org/StructureDefinition/valueset-text-pattern"
    _add_extension(rules, "limb-weakness", {"url": pattern, "valueString": "[{not json"})
    assert any(
        p.startswith("rules/valuesets/limb-weakness.json") and "a spaCy token pattern must be JSON" in p
        for p in problems(rules)
    )
    edit(rules, "valuesets/limb-weakness.json", lambda t: t.replace("[{not json", '[{\\"LOWER\\": {\\"NOPE\\": 1}}]'))
    assert any(p.startswith("rules/text") and "medspaCy refused" in p for p in problems(rules))


def test_the_context_rule_files_are_required(rules: Path) -> None:
    (rules / "text" / "answers.json").unlink()
    assert any(p.startswith("rules/text/answers.json") and "missing" in p for p in problems(rules))


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "not_followed_by: whole-spine-mri}\n  radicular_pain:",
            "not_followed_by: whole-spine-mr}\n  radicular_pain:",
            "criteria.neuro_symptom_unimaged.finding.not_followed_by: value set 'whole-spine-mr' does not exist",
        ),
        (
            "after_onset_of: mscc_presentation}",
            "after_onset_of: mscc_presentaton}",
            "criteria.whole_spine_mri_since_onset.order_or_study.after_onset_of: criterion 'mscc_presentaton' is not",
        ),
    ],
)
def test_options_naming_what_does_not_exist_are_refused(rules: Path, old: str, new: str, expected: str) -> None:
    edit(rules, RULE, lambda t: t.replace(old, new, 1))
    assert any(expected in p for p in problems(rules))


def test_text_mentions_naming_no_value_set_is_refused(rules: Path) -> None:
    edit(
        rules,
        active_file(PAIN),
        lambda t: t.replace("text_mentions: spinal-pain-night", "text_mentions: nite"),
    )
    assert any(
        "criteria.night_pain.finding.text_mentions: value set 'nite' does not exist" in p for p in problems(rules)
    )


def test_a_threshold_in_another_dimension_than_its_value_set_is_refused(rules: Path) -> None:
    edit(rules, active_file(PAIN), lambda t: t.replace("at_least: 7}", "at_least: 7, unit: mmol/L}"))
    [found] = [p for p in problems(rules) if active_file(PAIN) in p]
    assert "criteria.severe_pain_score.measurement.unit: mmol/L cannot be compared with 'pain-severity-score'" in found
    assert "measured in {score}" in found


def test_kg_on_a_calcium_criterion_is_refused(rules: Path) -> None:
    calcium = {
        "resourceType": "ValueSet", "id": "calcium", "url": "https://mscc-cds.example.org/ValueSet/calcium",
        "status": "active",
        "extension": [{"url": "https://mscc-cds.example.org/StructureDefinition/valueset-unit", "valueCode": "mmol/L"}],
        "compose": {"include": [{"system": "http://loinc.org", "concept": [{"code": "17861-6"}]}]},
    }  # fmt: skip
    (rules / "valuesets" / "calcium.json").write_text(json.dumps(calcium), encoding="utf-8")
    high_calcium = (
        "  high_calcium:\n    description: calcium\n    measurement: {valueset: calcium, above: 3, unit: kg}\n"
    )
    edit(rules, RULE, lambda t: t.replace("  mscc_presentation:\n", high_calcium + "  mscc_presentation:\n", 1))
    edit(
        rules,
        RULE,
        lambda t: t.replace(
            "radicular_pain_unimaged, nonspecific", "radicular_pain_unimaged, high_calcium, nonspecific", 1
        ),
    )
    found = [p for p in problems(rules) if "high_calcium" in p]
    assert len(found) == 1
    assert "kg cannot be compared with 'calcium', measured in mmol/L" in found[0]
    edit(rules, RULE, lambda t: t.replace("unit: kg", "unit: mmol/L"))
    assert not [p for p in problems(rules) if "high_calcium" in p]  # only the lock complains: a released edit


def test_a_measured_value_set_must_say_its_unit(rules: Path) -> None:
    path = rules / "valuesets" / "pain-severity-score.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    del raw["extension"]
    path.write_text(json.dumps(raw), encoding="utf-8")
    found = [p for p in problems(rules) if "severe_pain_score" in p]
    assert found
    assert all("does not say what its codes are measured in" in p for p in found)


def test_a_value_set_unit_that_is_not_ucum_is_refused(rules: Path) -> None:
    path = rules / "valuesets" / "pain-severity-score.json"
    path.write_text(path.read_text(encoding="utf-8").replace('"{score}"', '"points out of ten"'), encoding="utf-8")
    assert any("pain-severity-score.json" in p and "is not a UCUM unit" in p for p in problems(rules))


def test_a_draft_order_trigger_must_name_a_known_order_and_only_known_placeholders(rules: Path) -> None:
    edit(
        rules,
        "ruleset.yaml",
        lambda t: t.replace("    offers: whole-spine-mri\n    replace: true", "    offers: mri\n    replace: true", 1),
    )
    edit(
        rules,
        "ruleset.yaml",
        lambda t: t.replace("swap it for an MRI of the whole spine ({priority})", "swap it ({when})", 1),
    )
    found = problems(rules)
    assert any("draft_orders.0.offers: no order 'mri' in orders" in p for p in found), found
    assert any("draft_orders.0.headline: only {order} and {priority} may be used" in p for p in found), found


def test_replace_without_offers_is_refused(rules: Path) -> None:
    edit(
        rules,
        "ruleset.yaml",
        lambda t: t.replace("    offers: whole-spine-mri\n    replace: true", "    replace: true", 1),
    )
    edit(
        rules,
        "ruleset.yaml",
        lambda t: t.replace(' ({priority})"\n    order_name: Spine imaging', '"\n    order_name: Spine imaging', 1),
    )
    assert any("replace needs offers" in p for p in problems(rules))


def test_an_override_reason_needs_an_hl7_category(rules: Path) -> None:
    edit(rules, "ruleset.yaml", lambda t: t.replace("category: does-not-align-preferences", "category: declined", 1))
    found = problems(rules)
    assert any("override_reasons.patient-declines.category: Input should be 'cds-not-applicable'" in p for p in found)


def test_override_reasons_of_one_category_need_displays_feedback_can_tell_apart(rules: Path) -> None:
    same = "MRI of the spine already done or booked"
    edit(rules, "ruleset.yaml", lambda t: t.replace("Already under the MSCC coordinator or spinal team", same))
    found = problems(rules)
    expected = "override_reasons.under-spinal-team.display: same category and display as 'mri-done-or-booked'"
    assert any(expected in p for p in found), found
