"""FHIR semantics: statuses, absent findings, symptom questions, subjects, dates."""

from typing import Any

import pytest

from service.fhir.codes import SNOMED
from service.fhir.record import build_record, is_current_status

WEAKNESS = {"coding": [{"system": SNOMED, "code": "26544005", "display": "Muscle weakness"}]}


def obs(**extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": WEAKNESS,
        "subject": {"reference": "Patient/p"},
        "effectiveDateTime": "2026-11-19",
        **extra,
    }


def condition(**extra: Any) -> dict[str, Any]:
    return {"resourceType": "Condition", "id": "c1", "code": WEAKNESS, "subject": {"reference": "Patient/p"}, **extra}


def one_fact(resource: dict[str, Any]):
    record = build_record("p", [resource])
    assert len(record.facts) == 1, record.set_aside
    return record.facts[0]


@pytest.mark.parametrize(
    ("value", "presence"),
    [
        ({}, "present"),
        ({"valueBoolean": True}, "present"),
        ({"valueBoolean": False}, "absent"),
        ({"valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "52101004"}]}}, "present"),
        ({"valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "2667000"}]}}, "absent"),
        ({"valueCodeableConcept": {"coding": [{"system": "http://loinc.org", "code": "LA32-8"}]}}, "absent"),
        ({"valueString": "Absent"}, "absent"),
        ({"dataAbsentReason": {"text": "not asked"}}, "unknown"),
    ],
)
def test_observation_value_decides_presence(value: dict[str, Any], presence: str) -> None:
    assert one_fact(obs(**value)).presence == presence


def test_symptom_question_takes_the_finding_from_the_value() -> None:
    fact = one_fact(
        obs(code={"coding": [{"system": "http://loinc.org", "code": "75325-1"}]}, valueCodeableConcept=WEAKNESS)
    )
    assert fact.keys == ((SNOMED, "26544005"),)
    assert fact.presence == "present"
    assert fact.label == "Muscle weakness"


@pytest.mark.parametrize("status", ["entered-in-error", "cancelled"])
def test_ignored_observation_statuses(status: str) -> None:
    record = build_record("p", [obs(status=status)])
    assert record.facts == []
    assert record.set_aside[0].reason == f"status is {status}"


@pytest.mark.parametrize("verification", ["entered-in-error", "refuted"])
def test_ignored_condition_verification(verification: str) -> None:
    record = build_record("p", [condition(verificationStatus={"coding": [{"code": verification}]})])
    assert record.facts == []
    assert verification in record.set_aside[0].reason


def test_unconfirmed_or_provisional_conditions_still_count() -> None:
    assert one_fact(condition(verificationStatus={"coding": [{"code": "provisional"}]})).presence == "present"


def test_resolved_and_abated_conditions_are_not_current() -> None:
    assert not is_current_status(one_fact(condition(clinicalStatus={"coding": [{"code": "resolved"}]})))
    assert not is_current_status(one_fact(condition(abatementDateTime="2026-01-01")))
    assert is_current_status(one_fact(condition(clinicalStatus={"coding": [{"code": "active"}]})))


@pytest.mark.parametrize(
    "reference",
    ["Patient/p", "http://ehr.example/fhir/Patient/p", "Patient/p/_history/3", "urn:uuid:abc"],
)
def test_subject_forms_that_name_the_patient(reference: str) -> None:
    record = build_record("p", [obs(subject={"reference": reference})], patient_aliases={"urn:uuid:abc"})
    assert len(record.facts) == 1


@pytest.mark.parametrize("subject", [{"reference": "Patient/other"}, {"reference": "Group/p"}, {"display": "p"}, None])
def test_other_or_missing_subjects_are_set_aside(subject: dict[str, str] | None) -> None:
    resource = obs(subject=subject) if subject is not None else {k: v for k, v in obs().items() if k != "subject"}
    record = build_record("p", [resource])
    assert record.facts == []
    assert record.set_aside[0].reason == "subject is not the patient in context"


def test_invalid_resource_is_reported_and_not_used() -> None:
    record = build_record("p", [obs(effectiveDateTime="not a date"), condition(id="ok")])
    assert [f.reference for f in record.facts] == ["Condition/ok"]
    assert record.issues[0].reference == "Observation/o1"


def test_latest_date_wins_for_conditions() -> None:
    fact = one_fact(condition(onsetDateTime="2020-01-01", recordedDate="2026-11-01"))
    assert fact.date_text == "2026-11-01"


def test_quantities_and_integers_are_values() -> None:
    assert one_fact(obs(valueQuantity={"value": 8, "unit": "{score}"})).value == 8
    assert one_fact(obs(valueInteger=3)).value == 3


def test_resources_the_rules_do_not_read_are_skipped_silently() -> None:
    record = build_record("p", [{"resourceType": "Patient", "id": "p"}, {"resourceType": "Encounter", "id": "e"}])
    assert record.facts == []
    assert record.set_aside == []
