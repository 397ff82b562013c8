from typing import Any

from service.engine.decide import decide
from service.fhir.record import build_record
from tests.helpers import CANCER, NOW, PAIN, active_ref, obs


def fired(ruleset, resources: list[dict[str, Any]]) -> list[str]:
    return [d.ref for d in decide(ruleset, build_record("p", resources), NOW) if d.fired]


def test_absent_finding_only_negates_the_same_code(ruleset) -> None:
    resources = [
        CANCER,
        PAIN,
        obs("weak", "102568007", "2026-11-10", True),
        obs("no-numb", "44077006", "2026-11-19", False),
    ]
    assert active_ref("mscc-suspected") in fired(ruleset, resources)


def test_absent_recorded_earlier_does_not_negate_a_later_present(ruleset) -> None:
    resources = [
        CANCER,
        PAIN,
        obs("no-weak", "102568007", "2026-11-01", False),
        obs("weak", "102568007", "2026-11-19", True),
    ]
    assert active_ref("mscc-suspected") in fired(ruleset, resources)


def test_absent_recorded_later_negates_and_is_shown_as_evidence_against(ruleset) -> None:
    resources = [
        CANCER,
        PAIN,
        obs("weak", "102568007", "2026-11-01", True),
        obs("no-weak", "102568007", "2026-11-19", False),
    ]
    decision = next(d for d in decide(ruleset, build_record("p", resources), NOW) if d.rule.id == "mscc-suspected")
    assert not decision.fired
    neuro = decision.criteria["neuro_symptom"]
    assert [f.reference for f in neuro.against] == ["Observation/no-weak"]
    assert "recorded as absent later" in neuro.not_counted[0][1]


def test_several_rules_can_fire_and_most_urgent_comes_first(ruleset) -> None:
    resources = [CANCER, PAIN, obs("weak", "102568007", "2026-11-19", True)]
    assert fired(ruleset, resources) == [active_ref("mscc-suspected"), active_ref("spinal-metastasis-pain")]


def test_hook_filter_and_explicit_versions(ruleset) -> None:
    record = build_record("p", [CANCER, PAIN])
    only = decide(ruleset, record, NOW, rules=[ruleset.version("spinal-metastasis-pain")])
    assert [d.ref for d in only] == [active_ref("spinal-metastasis-pain")]
    assert len(decide(ruleset, record, NOW, hook="patient-view")) == 3


def test_evaluation_is_pure_and_repeatable(ruleset) -> None:
    record = build_record("p", [CANCER, PAIN, obs("weak", "102568007", "2026-11-19", True)])
    first = [(d.ref, d.fired, [f.reference for f in d.evidence]) for d in decide(ruleset, record, NOW)]
    second = [(d.ref, d.fired, [f.reference for f in d.evidence]) for d in decide(ruleset, record, NOW)]
    assert first == second
