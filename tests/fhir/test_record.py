"""FHIR semantics: statuses, absent findings, symptom questions, subjects, dates."""

from typing import Any

import pytest

from service.config import PROJECT_ROOT
from service.engine.loader import load_ruleset
from service.fhir.codes import SNOMED
from service.fhir.record import build_record, is_current_status

TEXT = load_ruleset(PROJECT_ROOT / "rules").text_path  # answers in words are read with the rule set's medspaCy reader

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
    record = build_record("p", [resource], text=TEXT)
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


@pytest.mark.parametrize("subject", [{"reference": "Patient/other"}, {"reference": "Group/p"}])
def test_another_patients_data_is_set_aside_as_a_clinical_fact(subject: dict[str, str]) -> None:
    record = build_record("p", [obs(subject=subject)])
    assert record.facts == []
    assert record.set_aside[0].reason == "subject is not the patient in context"
    assert record.set_aside[0].category == "other-patient"
    assert not record.set_aside[0].unreadable


@pytest.mark.parametrize("subject", [{"display": "p"}, None])
def test_data_without_a_subject_is_unreadable_not_someone_elses(subject: dict[str, str] | None) -> None:
    resource = obs(subject=subject) if subject is not None else {k: v for k, v in obs().items() if k != "subject"}
    record = build_record("p", [resource])
    assert record.facts == []
    (aside,) = record.set_aside
    assert (aside.category, aside.unreadable, aside.keys) == ("no-subject", True, ((SNOMED, "26544005"),))
    assert aside.label == "Muscle weakness"


def test_a_malformed_field_the_rules_can_do_without_is_reported_and_the_resource_counts() -> None:
    record = build_record("p", [obs(effectiveDateTime="not a date", issued="2026-11-19T10:00:00Z"), condition(id="ok")])
    assert [f.reference for f in record.facts] == ["Observation/o1", "Condition/ok"]
    (issue,) = record.issues
    assert (issue.reference, issue.location, issue.outcome) == (
        "Observation/o1",
        "Observation.effectiveDateTime",
        "counted",
    )
    assert record.facts[0].date_text == "2026-11-19T10:00:00Z"  # the readable date is used
    assert record.facts[0].problems == ("Observation.effectiveDateTime: " + issue.message,)


def test_an_observation_without_status_still_counts() -> None:
    record = build_record("p", [{k: v for k, v in obs().items() if k != "status"}])
    assert len(record.facts) == 1
    assert [(i.location, i.outcome) for i in record.issues] == [("Observation.status", "counted")]


def test_an_unreadable_code_sets_the_resource_aside_as_unreadable_with_what_it_seems_to_be() -> None:
    broken = obs(code={"coding": [{"system": SNOMED, "code": "26544005", "display": "Muscle weakness", "bogus": 1}]})
    record = build_record("p", [broken])
    assert record.facts == []
    (aside,) = record.set_aside
    assert (aside.category, aside.unreadable, aside.label) == ("invalid", True, "Muscle weakness")
    assert aside.keys == ((SNOMED, "26544005"),)
    assert record.issues[0].outcome == "set aside"


def test_a_single_object_for_an_array_is_read_as_one_element_with_an_issue() -> None:
    record = build_record("p", [obs(code={"coding": {"system": SNOMED, "code": "26544005"}})])
    assert record.facts[0].keys == ((SNOMED, "26544005"),)
    assert [(i.location, i.outcome) for i in record.issues] == [("Observation.code.coding", "counted")]
    assert "one-element array" in record.issues[0].message


def test_a_coding_without_system_is_never_matched_but_is_reported() -> None:
    record = build_record("p", [condition(code={"coding": [{"code": "C50.9", "display": "Breast cancer"}]})])
    (fact,) = record.facts
    assert fact.keys == ()
    assert fact.systemless == ("C50.9",)
    assert [(i.location, i.message) for i in record.issues] == [
        ("Condition.code", "a coding has no system: not matched")
    ]


@pytest.mark.parametrize("value", [11, -1, 1_000_000, 10.5])
def test_a_pain_score_off_its_scale_is_set_aside_with_an_issue(value: float) -> None:
    score = obs(code={"coding": [{"system": "http://loinc.org", "code": "72514-3"}]}, valueQuantity={"value": value})
    record = build_record("p", [score])
    assert record.facts == []
    assert record.set_aside[0].category == "out-of-range"
    assert "outside its scale 0-10" in record.issues[0].message


@pytest.mark.parametrize("value", [0, 7, 10])
def test_a_pain_score_on_its_scale_counts(value: int) -> None:
    score = obs(code={"coding": [{"system": "http://loinc.org", "code": "72514-3"}]}, valueInteger=value)
    assert one_fact(score).value == value


@pytest.mark.parametrize("value", [10**400, float("inf"), "8", True])
def test_a_number_that_is_no_finite_number_is_no_measurement(value: object) -> None:
    record = build_record("p", [obs(valueQuantity={"value": value})])
    assert all(f.value is None for f in record.facts)


def test_a_malformed_boolean_means_unknown_not_absent() -> None:
    record = build_record("p", [obs(valueBoolean="maybe")])
    assert record.facts[0].presence == "unknown"
    assert record.issues[0].outcome == "counted"


@pytest.mark.parametrize(("value", "presence"), [("yes", "present"), ("false", "absent")])
def test_a_boolean_written_as_text_is_read_as_validation_reads_it(value: str, presence: str) -> None:
    assert one_fact(obs(valueBoolean=value)).presence == presence


@pytest.mark.parametrize("date", ["9999-12-31", "9999", "9999-12-31T23:59:59Z", "0001-01-01"])
def test_extreme_dates_are_read_not_crashed_on(date: str) -> None:
    assert one_fact(condition(onsetDateTime=date)).date_text == date


def test_a_condition_is_dated_by_its_onset_not_when_it_was_recorded() -> None:
    fact = one_fact(condition(onsetDateTime="2020-01-01", recordedDate="2026-11-01"))
    assert fact.date_text == "2020-01-01"
    assert fact.recorded is not None
    assert fact.recorded.text == "2026-11-01"


def test_recorded_date_dates_a_condition_without_an_onset() -> None:
    assert one_fact(condition(recordedDate="2026-11-01")).date_text == "2026-11-01"


def test_quantities_and_integers_are_values() -> None:
    assert one_fact(obs(valueQuantity={"value": 8, "unit": "{score}"})).value == 8
    assert one_fact(obs(valueInteger=3)).value == 3


def test_resources_the_rules_do_not_read_are_skipped_silently() -> None:
    record = build_record("p", [{"resourceType": "Patient", "id": "p"}, {"resourceType": "Encounter", "id": "e"}])
    assert record.facts == []
    assert record.set_aside == []


@pytest.mark.parametrize("status", [7, [], {"code": "final"}])
def test_a_malformed_status_is_no_status(status: object) -> None:
    record = build_record("p", [obs(status=status), condition(clinicalStatus={"coding": [{"code": 3}]})])
    assert [f.status for f in record.facts] == [None, None]


def test_a_resource_whose_type_is_not_a_string_is_not_read_and_does_not_raise() -> None:
    record = build_record("p", [{"resourceType": []}, {"resourceType": {"a": 1}}, {"resourceType": None}])
    assert record.facts == []  # the Bundle and prefetch readers name such entries
    assert record.set_aside == []


def test_each_component_of_a_panel_is_a_finding_of_its_own() -> None:
    panel = obs(
        code={"coding": [{"system": "urn:oid:1.2.3", "code": "NEURO", "display": "Neuro assessment"}]},
        component=[
            {"code": WEAKNESS, "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "52101004"}]}},
            {"code": {"coding": [{"system": SNOMED, "code": "267064002", "display": "Retention of urine"}]},
             "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "260415000"}]}},
        ],
    )  # fmt: skip
    facts = build_record("p", [panel], text=TEXT).facts
    parts = {f.label: (f.presence, f.reference) for f in facts if f.part}
    assert parts == {
        "Muscle weakness": ("present", "Observation/o1"),
        "Retention of urine": ("absent", "Observation/o1"),
    }
    assert len({f.key for f in facts}) == len(facts)


@pytest.mark.parametrize(
    ("extra", "presence"),
    [
        ({"interpretation": [{"coding": [{"code": "NEG"}]}]}, "absent"),
        ({"interpretation": [{"coding": [{"code": "ND"}]}], "valueBoolean": True}, "absent"),
        ({"valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "260385009"}]}}, "absent"),
        ({"valueCodeableConcept": {"coding": [{"system": "http://loinc.org", "code": "LA11882-0"}]}}, "present"),
        ({"valueCodeableConcept": {"text": "Patient denies"}}, "absent"),
        ({"valueString": "Unable to assess"}, "unknown"),
    ],
)
def test_denials_and_interpretations_are_read(extra: dict[str, Any], presence: str) -> None:
    assert one_fact(obs(**extra)).presence == presence


def test_a_condition_of_the_hook_encounter_is_marked() -> None:
    record = build_record("p", [condition(encounter={"reference": "Encounter/e1"})], encounter_id="e1")
    assert record.facts[0].at_encounter
    assert (
        not build_record("p", [condition(encounter={"reference": "Encounter/e2"})], encounter_id="e1")
        .facts[0]
        .at_encounter
    )


def test_a_declared_profile_and_words_become_keys() -> None:
    profile = "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-primary-cancer-condition"
    mcode = condition(meta={"profile": [profile + "|3.0.0"]}, code={"coding": [{"system": SNOMED, "code": "1"}]})
    assert ("urn:mscc-cds:profile", profile) in one_fact(mcode).keys
    local = condition(
        code={"coding": [{"system": "https://h.example/dx", "code": "X", "display": "Spinal cord compression"}]}
    )
    facts = build_record("p", [local], text=TEXT).facts
    [read] = [f for f in facts if f.from_text]
    assert read.keys == (("urn:mscc-cds:text", "mscc-diagnoses"),)
    assert read.part == ""  # the Condition itself, read from its words
