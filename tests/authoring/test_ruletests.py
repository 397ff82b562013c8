"""Every case in rules/*/tests runs as a pytest test, and every rule has a positive and a negative case."""

import shutil

import pytest

from authoring.ruletests import lint_rule_tests, run_rule_tests
from service.config import PROJECT_ROOT
from service.engine.loader import load_ruleset
from tests.helpers import new_version

RULESET = load_ruleset(PROJECT_ROOT / "rules")
RESULTS = run_rule_tests(RULESET)


@pytest.mark.parametrize("result", RESULTS, ids=[f"{r.rule_id}@{r.version}: {r.name}" for r in RESULTS])
def test_rule_case(result) -> None:
    assert result.passed, result.message


def test_every_rule_has_positive_and_negative_cases() -> None:
    assert lint_rule_tests(RESULTS, RULESET) == []
    assert len(RESULTS) >= 25


def test_a_wrong_expectation_fails(tmp_path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(PROJECT_ROOT / "rules", rules)
    shutil.copytree(PROJECT_ROOT / "fhir_examples", tmp_path / "fhir_examples")
    cases = rules / "spinal-metastasis-pain/tests/cases.yaml"
    cases.write_text(
        cases.read_text().replace(
            "expect: {fires: false, criteria: {cancer: false, severe",
            "expect: {fires: true, criteria: {cancer: false, severe",
        )
    )
    failed = [r for r in run_rule_tests(load_ruleset(rules)) if not r.passed]
    assert [r.message for r in failed] == ["expected fires=True, got False"]


def test_a_case_naming_an_unknown_example_fails_and_says_so(tmp_path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(PROJECT_ROOT / "rules", rules)
    cases = rules / "mscc-suspected/tests/cases.yaml"
    cases.write_text(cases.read_text().replace("example: 01-mscc-breast-cancer-leg-weakness", "example: 01-typo", 1))
    [failed] = [r for r in run_rule_tests(load_ruleset(rules)) if not r.passed]
    assert "no example patient '01-typo'" in failed.message


def test_a_case_needs_exactly_one_patient_source() -> None:
    from pydantic import ValidationError

    from authoring.ruletests import RuleTestCase

    with pytest.raises(ValidationError, match="exactly one of"):
        RuleTestCase.model_validate({"name": "x", "example": "01", "resources": [], "expect": {"fires": True}})


def test_a_draft_without_cases_of_its_own_fails(tmp_path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(PROJECT_ROOT / "rules", rules)
    new = new_version(rules, "mscc-suspected", "draft")
    ruleset = load_ruleset(rules)
    problems = lint_rule_tests(run_rule_tests(ruleset), ruleset)
    assert (
        f"rules/mscc-suspected/tests: the draft mscc-suspected@{new} has no case where it fires (version: {new})"
        in problems
    )
    assert any(f"mscc-suspected@{new} has no negative case" in p for p in problems)
    (rules / "mscc-suspected/tests/draft.yaml").write_text(
        f"now: '2026-11-20T09:00:00Z'\nversion: {new}\ncases:\n"
        "  - {name: fires, example: 01-mscc-breast-cancer-leg-weakness, expect: {fires: true}}\n"
        "  - {name: silent, example: 09-no-cancer-low-back-pain-only, expect: {fires: false}}\n"
    )
    assert lint_rule_tests(run_rule_tests(ruleset), ruleset) == []
