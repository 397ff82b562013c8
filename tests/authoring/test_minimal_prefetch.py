"""Minimal prefetch loses no warning sign: every red flag of the matrix (each coding form, each FHIR state), every
example and every real record gives the same card, the same lead rule and the same evidence when the EHR sends
only what the rules' filtered queries ask for, as when it sends the whole chart."""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import parse_qsl

import pytest

from authoring.fhirsearch import UnsupportedSearch, matches, prefetch_as_ehr, search
from authoring.validation import ValidationCase, all_cases
from service.cdshooks.cards import CardContext, render_card
from service.engine.evaluation import evaluate_record
from service.engine.prefetchplan import MAX_LISTED, NOT_LABORATORY, ReadCodes, plan_key
from service.engine.ruleset import RuleSet
from service.fhir.codes import LOINC, SNOMED
from service.fhir.record import build_record

CANCER = ("http://snomed.info/sct", "254837009")


def outcome(ruleset: RuleSet, case: ValidationCase) -> tuple[Any, ...]:
    record = build_record(case.patient_id, case.resources, patient_aliases=case.aliases, relevant=ruleset.relevant)
    evaluation = evaluate_record(ruleset, record, case.now, hook="patient-view")
    card = render_card(evaluation, CardContext(lambda: "u"))
    return (
        card.indicator if card else None,
        evaluation.lead.ref if evaluation.lead else None,
        sorted(f.reference for f in evaluation.evidence),
        sorted(u.reference for u in evaluation.unreadable),
    )


def test_no_warning_sign_is_lost_when_the_ehr_honours_the_filters(ruleset: RuleSet) -> None:
    templates = ruleset.service("mscc-patient-view").prefetch  # type: ignore[union-attr]
    cases = all_cases()
    assert len(cases) > 100
    narrowed = 0
    for case in cases:
        sent = prefetch_as_ehr(templates, case.resources, case.patient_id, check_patient=False)
        kept = {id(r) for found in sent.values() for r in found}
        patients = [r for r in case.resources if r.get("resourceType") == "Patient"]
        filtered = dataclasses.replace(case, resources=[*patients, *(r for r in case.resources if id(r) in kept)])
        narrowed += len(filtered.resources) < len(case.resources)
        assert outcome(ruleset, filtered) == outcome(ruleset, case), case.name
    assert narrowed  # the filters did leave data out (the real records' laboratory results)


def test_codes_that_can_be_listed_become_a_code_filter() -> None:
    read = {"Condition": ReadCodes(frozenset({CANCER}), True)}
    [planned] = plan_key("conditions", "Condition?patient={{context.patientId}}", read)
    assert planned.query == "Condition?patient={{context.patientId}}&code=http://snomed.info/sct|254837009"
    assert planned.base == "Condition?patient={{context.patientId}}"
    many = {"Condition": ReadCodes(frozenset((SNOMED, str(n)) for n in range(MAX_LISTED + 1)), True)}
    assert plan_key("conditions", "Condition?patient=x", many)[0].query == "Condition?patient=x"
    prefixes = {"Condition": ReadCodes(frozenset({CANCER}), False)}
    assert plan_key("conditions", "Condition?patient=x", prefixes)[0].query == "Condition?patient=x"


def test_observations_that_cannot_be_listed_are_split_inside_the_query_subset() -> None:
    """CDS Hooks 3.0 query subset: token equality and `:in` only (no `:not`). Every category but laboratory;
    the findings read by code whatever their category (bare codes, in the code or a component's); and the
    laboratory results a rule reads."""
    listed = frozenset({(LOINC, "72514-3"), ("http://hl7.org/fhir/sid/icd-10-cm", "R201")})
    read = {"Observation": ReadCodes(frozenset({CANCER, (LOINC, "72514-3")}), False, listed)}
    rest, coded, lab = plan_key("observations", "Observation?patient=x", read)
    assert rest.query == f"Observation?patient=x&category={NOT_LABORATORY}"
    assert "laboratory" not in NOT_LABORATORY.split(",")
    assert {"exam", "survey", "vital-signs", "social-history"} <= set(NOT_LABORATORY.split(","))
    assert coded.key == "observations_coded"
    assert coded.query == "Observation?patient=x&combo-code=72514-3,R20.1"  # ICD codes as EHRs write them
    for planned in (rest, coded, lab):  # no modifier on any parameter
        assert all(":" not in name for name, _ in parse_qsl(planned.query.split("?", 1)[1]))
    assert lab.key == "observations_laboratory"
    assert lab.query == "Observation?patient=x&category=laboratory&code=http://loinc.org|72514-3"
    no_loinc = {"Observation": ReadCodes(frozenset({CANCER}), False)}
    assert [p.key for p in plan_key("observations", "Observation?patient=x", no_loinc)] == ["observations"]


def test_types_without_a_code_search_or_rules_keep_their_base_query() -> None:
    read = {"ImagingStudy": ReadCodes(frozenset({CANCER}), True)}
    assert plan_key("studies", "ImagingStudy?patient=x", read)[0].query == "ImagingStudy?patient=x"
    assert plan_key("meds", "MedicationRequest?patient=x", read)[0].query == "MedicationRequest?patient=x"
    assert plan_key("patient", "Patient/{{context.patientId}}", read)[0].query == "Patient/{{context.patientId}}"


def test_the_plan_reads_every_rule_version_and_the_site_codes(ruleset: RuleSet) -> None:
    from service.config import PROJECT_ROOT
    from service.engine.loader import load_ruleset

    read = ruleset.codes_read
    assert not read["Observation"].listable  # the cancer value set
    assert (LOINC, "75325-1") in read["Observation"].codes  # the symptom question carries its answer
    site = load_ruleset(PROJECT_ROOT / "rules", PROJECT_ROOT / "deploy" / "site.example")
    assert len(site.codes_read["ServiceRequest"].codes) >= len(read["ServiceRequest"].codes)
    service, keys = ruleset.prefetch_plan["mscc-patient-view"]
    assert "observations_laboratory" in service.optional_prefetch  # an EHR registered before it need not send it
    assert {k: p.base for k, p in keys.items()}["observations_laboratory"] == service.prefetch["observations"].split(
        "&"
    )[0]


def test_the_search_an_ehr_runs() -> None:
    lab = {
        "resourceType": "Observation",
        "subject": {"reference": "Patient/p"},
        "category": [{"coding": [{"code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
    }
    uncategorised = {**lab, "category": None}
    assert not matches(lab, "Observation?patient=p&category:not=laboratory")
    assert matches(uncategorised, "Observation?patient=p&category:not=laboratory")  # no category: not a lab
    assert not matches(uncategorised, f"Observation?patient=p&category={NOT_LABORATORY}")
    panel = {**uncategorised, "component": [{"code": {"coding": [{"code": "26544005"}]}}]}
    assert matches(panel, "Observation?patient=p&combo-code=1-1,26544005")  # a component's code
    assert matches(lab, "Observation?patient=p&combo-code=2345-7")
    assert not matches(lab, "Observation?patient=p&combo-code=26544005")
    assert matches(lab, "Observation?patient=p&code=http://loinc.org|2345-7,http://loinc.org|1-1")
    assert matches(lab, "Observation?patient=p&code=2345-7")
    assert not matches(lab, "Observation?patient=q")
    assert search([lab], "Observation?patient=q", check_patient=False) == [lab]
    with pytest.raises(UnsupportedSearch):
        matches(lab, "Observation?patient=p&value-quantity=5")
