"""Trial before activation: any two versions, drafts included, over every example, real and boundary patient."""

from __future__ import annotations

from pathlib import Path

import pytest

from authoring.__main__ import main
from authoring.compare import boundary_report, compare
from service.config import PROJECT_ROOT
from service.engine.loader import load_ruleset
from tests.helpers import add_score_6_draft, score_6_draft_ref


@pytest.fixture
def draft_score_6(rules: Path) -> Path:
    return add_score_6_draft(rules)


def test_lowering_a_threshold_always_shows_its_effect(draft_score_6: Path) -> None:
    changes = compare(load_ruleset(draft_score_6), None, score_6_draft_ref())
    changed = [c for c in changes if c.kind != "same"]
    assert [c.patient.name for c in changed] == [
        "spinal-metastasis-pain: severe_pain_score alone ~ severe_pain_score value 6"
    ]
    [gain] = changed
    assert gain.kind == "gains a card"
    assert gain.after.offers == ("whole-spine-mri", "spinal-mdt-referral")
    sources = {c.patient.source for c in changes}
    assert {"example", "boundary"} <= sources


def test_two_named_versions_compare_over_the_real_records_too() -> None:
    changes = compare(load_ruleset(PROJECT_ROOT / "rules"), "mscc-suspected@2.0.0", "mscc-suspected@4.0.0")
    assert any(c.kind == "gains a card" for c in changes)  # 4.0.0 no longer needs spinal pain (NICE NG234)
    if (PROJECT_ROOT / "fhir_examples/realdata").is_dir():
        assert any(c.patient.source == "real record" for c in changes)


def test_each_version_is_shown_at_its_own_edges() -> None:
    lines = boundary_report(load_ruleset(PROJECT_ROOT / "rules"))
    pain = [line for line in lines if "severe_pain_score alone" in line]
    assert "  silent spinal-metastasis-pain: severe_pain_score alone ~ severe_pain_score value 6" in pain
    assert "  fires  spinal-metastasis-pain: severe_pain_score alone ~ severe_pain_score value 7" in pain
    assert any("dated 29 days before now" in line and line.startswith("  fires") for line in lines)
    assert any("dated 31 days before now" in line and line.startswith("  silent") for line in lines)


def test_the_cli_compares_and_can_fail_on_a_change(draft_score_6: Path, capsys) -> None:
    args = ["rules", "diff", "--rules", str(draft_score_6), "--compare", score_6_draft_ref()]
    assert main(args) == 0
    assert "1 of " in capsys.readouterr().out
    assert main([*args, "--fail-on-change"]) == 1
    assert main(["rules", "diff", "--compare", "nope@9.9.9"]) == 2
    assert "no rule version 'nope@9.9.9'" in capsys.readouterr().err
