"""A warning sign that could not be read reaches the clinician; a clinical statement or a harmless problem does not."""

from __future__ import annotations

from typing import Any

from service.cdshooks.cards import EXTENSION_KEY, CardContext, render_card
from service.engine.evaluation import evaluate_record
from service.fhir.codes import ICD10CM, SNOMED
from service.fhir.record import build_record
from tests.helpers import NOW

CANCER = {
    "resourceType": "Condition",
    "id": "ca",
    "subject": {"reference": "Patient/p"},
    "recordedDate": "2024-01-01",
    "code": {"coding": [{"system": SNOMED, "code": "254837009", "display": "Malignant neoplasm of breast"}]},
}


def condition(cid: str, system: str | None, code: str, **extra: Any) -> dict[str, Any]:
    coding = {"code": code, "display": cid} | ({"system": system} if system else {})
    return {"resourceType": "Condition", "id": cid, "subject": {"reference": "Patient/p"},
            "code": {"coding": [coding]}, "recordedDate": "2026-11-19", **extra}  # fmt: skip


def card_for(ruleset, resources: list[dict[str, Any]]):
    evaluation = evaluate_record(ruleset, build_record("p", resources), NOW)
    return list(evaluation.unreadable), render_card(evaluation, CardContext(lambda: "u"))


def test_a_cord_compression_without_a_subject_gets_a_card_of_its_own(ruleset) -> None:
    no_subject = {k: v for k, v in condition("scc", SNOMED, "71286001").items() if k != "subject"}
    signs, card = card_for(ruleset, [CANCER, no_subject])
    assert [(s.reference, s.problem) for s in signs] == [("Condition/scc", "names no subject")]
    assert card is not None
    assert card.indicator == "warning"
    assert "| scc | 19 Nov 2026 | names no subject |" in (card.detail or "")
    assert card.extension[EXTENSION_KEY]["unreadable"] == [
        {"reference": "Condition/scc", "problem": "names no subject"}
    ]
    assert card.suggestions is None  # no orders on data that could not be read


def test_an_unreadable_entry_beside_a_fired_rule_is_named_on_its_card(ruleset) -> None:
    broken = {"resourceType": "Observation", "id": "walk", "status": "final", "subject": {"reference": "Patient/p"},
              "code": {"coding": [{"system": SNOMED, "code": "719232003"}]}, "effectiveDateTime": "soon"}  # fmt: skip
    signs, card = card_for(ruleset, [CANCER, condition("scc", ICD10CM, "G95.20"), broken])
    assert card is not None
    assert card.indicator == "critical"
    assert [(s.reference, s.problem) for s in signs] == [
        ("Observation/walk", "could not read Observation.effectiveDateTime")
    ]
    assert card.extension[EXTENSION_KEY]["unreadable"][0]["reference"] == "Observation/walk"  # type: ignore[index]
    assert "**Could not be read**" in (card.detail or "")


def test_a_cancer_coded_without_system_is_named_and_the_card_does_not_claim_no_cancer(ruleset) -> None:
    resources = [
        condition("ca", None, "C50.911"),
        condition("lbp", SNOMED, "279039007"),
        condition("ret", SNOMED, "267064002"),
    ]
    signs, card = card_for(ruleset, resources)
    assert [s.problem for s in signs] == ["coded C50.911 with no system"]
    assert card is not None
    assert "No recognised cancer code" in (card.detail or "")
    assert "No cancer is recorded" not in (card.detail or "")


def test_a_score_off_its_scale_is_named(ruleset) -> None:
    score = {"resourceType": "Observation", "id": "s", "status": "final", "subject": {"reference": "Patient/p"},
             "code": {"coding": [{"system": "http://loinc.org", "code": "72514-3"}]},
             "effectiveDateTime": "2026-11-19", "valueInteger": 11}  # fmt: skip
    signs, _ = card_for(ruleset, [CANCER, condition("lbp", SNOMED, "279039007"), score])
    assert [s.problem for s in signs] == ["score 11 is outside its scale 0-10"]


def test_clinical_statements_and_harmless_problems_raise_no_alarm(ruleset) -> None:
    refuted = condition("scc", SNOMED, "71286001", verificationStatus={"coding": [{"code": "refuted"}]})
    theirs = condition("walk", SNOMED, "719232003", subject={"reference": "Patient/other"})
    odd_note = condition("lbp", SNOMED, "279039007", note="not an array")  # a field the rules never read
    signs, card = card_for(ruleset, [CANCER, refuted, theirs, odd_note])
    assert signs == []
    assert card is None


def test_an_unreadable_entry_no_rule_reads_raises_no_alarm(ruleset) -> None:
    glucose = condition("dm", SNOMED, "44054006")
    del glucose["subject"]
    signs, card = card_for(ruleset, [glucose])
    assert signs == []
    assert card is None


def named(ruleset, resources: list[dict[str, Any]]) -> list[tuple[str, str]]:
    record = build_record("p", resources, text=ruleset.text_path)
    return [(s.reference, s.problem) for s in evaluate_record(ruleset, record, NOW).unreadable]


def test_a_sign_with_neither_date_nor_status_is_named_not_guessed(ruleset) -> None:
    undated = {k: v for k, v in condition("ces", SNOMED, "192970008").items() if k != "recordedDate"}
    assert named(ruleset, [CANCER, undated]) == [
        ("Condition/ces", "undated, with no clinical status: not known to be recent")
    ]
    active = {**undated, "clinicalStatus": {"coding": [{"code": "active"}]}}
    assert named(ruleset, [CANCER, active]) == []  # an active problem is current by its own statement


def test_an_answer_in_words_that_says_neither_yes_nor_no_is_named(ruleset) -> None:
    answer = {"resourceType": "Observation", "id": "weak", "status": "final", "subject": {"reference": "Patient/p"},
              "code": {"coding": [{"system": SNOMED, "code": "102568007"}]}, "effectiveDateTime": "2026-11-19",
              "valueString": "Unable to assess"}  # fmt: skip
    [(reference, problem)] = named(ruleset, [CANCER, answer])
    assert reference == "Observation/weak"
    assert problem.startswith("not read with confidence: answer not read with confidence: 'Unable to assess'")


def test_words_that_only_suppose_a_cancer_are_named_unless_a_cancer_is_coded(ruleset) -> None:
    suspected = {"resourceType": "Condition", "id": "sus", "subject": {"reference": "Patient/p"},
                 "code": {"text": "Suspected lung cancer"}, "recordedDate": "2026-11-10"}  # fmt: skip
    cord = condition("scc", SNOMED, "71286001")
    assert [r for r, _ in named(ruleset, [suspected, cord])] == ["Condition/sus"]
    assert named(ruleset, [CANCER, suspected, cord]) == []  # the cancer is known: the card fires, nothing to check
