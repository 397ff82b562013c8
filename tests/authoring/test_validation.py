"""The clinical safety gate of `make test`: the active rules against the reviewed answers (rules/validation)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from authoring.validation import CRITICAL_RULE, EXPECTED, all_cases, matrix_cases, render_report, validate_cases
from service.config import PROJECT_ROOT
from service.engine.loader import load_ruleset
from service.engine.yamlfile import load_yaml
from tests.helpers import active_ref, active_version


@pytest.fixture(scope="module")
def report(ruleset):
    return validate_cases(ruleset, all_cases())


def test_active_rules_pass_the_safety_gate(report) -> None:
    """No emergency of the matrix without its critical card, no card for a real record without a red flag, every
    invasive cancer of the real records recognised and no in-situ neoplasm taken for one."""
    assert report.safety_failures == []
    assert [d for d in report.disagreements if "[active]" in d] == []


def test_the_gate_covers_every_red_flag_in_every_form_and_state(report) -> None:
    table = load_yaml(EXPECTED)
    matrix = [c for c in report.cases if c.source == "matrix"]
    emergencies = [c for c in matrix if c.card == "critical"]
    for flag in table["red_flags"]:
        assert any(f"| {flag['concept']} |" in c.name for c in emergencies), flag["concept"]
    for form in table["forms"]:
        assert any(f"| {form} |" in c.name for c in emergencies), form
    for state in table["states"]:
        assert any(c.name.endswith(f"| {state}") for c in matrix), state
    real = [c for c in report.cases if c.source == "real record"]
    assert len(real) >= 30
    assert sum(c.invasive_cancer is True for c in real) == len(table["real_records"]["invasive_cancer"])
    assert len([c for c in report.cases if c.source == "example"]) >= 15


def test_rates_and_disagreements_are_reported_for_every_version(report, ruleset) -> None:
    text = render_report(report, ruleset)
    assert f"{active_ref('mscc-suspected'):36} active   100.0% (" in text
    assert "mscc-suspected@2.0.0                 retired" in text  # retired versions are measured too
    assert text.rstrip().endswith("PASS")


def test_the_gate_fails_on_a_rule_set_that_misses_emergencies(tmp_path: Path) -> None:
    """Reactivate 2.0.0 (which asked for spinal pain too): the gate must name the missed emergencies."""
    rules = tmp_path / "rules"
    shutil.copytree(PROJECT_ROOT / "rules", rules)
    for version, status in (("2.0.0", "active"), (active_version("mscc-suspected"), "retired")):
        path = rules / "mscc-suspected" / f"{version}.yaml"
        text = path.read_text(encoding="utf-8")
        path.write_text(
            text.replace("status: retired", f"status: {status}").replace("status: active", f"status: {status}")
        )
    weaker = load_ruleset(rules)
    assert weaker.version(CRITICAL_RULE).version == "2.0.0"  # type: ignore[union-attr]
    cases = list(matrix_cases(load_yaml(EXPECTED)))
    failures = validate_cases(weaker, cases).safety_failures
    assert any("MISSED EMERGENCY" in f and "| urinary retention |" in f for f in failures)
