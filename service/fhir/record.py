"""Normalise a patient's FHIR resources into coded facts the rule engine can read without knowing FHIR.

This is where FHIR semantics live: which statuses mean "ignore", which Observation values mean a
finding is absent, which dates count, and which resources belong to another patient. The engine
only sees `Fact`s and the reasons other resources were set aside.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from service.fhir.codes import LOINC, SNOMED, coding_key
from service.fhir.dates import FhirTime, latest_of, parse_fhir_time
from service.fhir.validate import VALIDATED_TYPES, InputIssue, reference_of, validate_resource

Presence = Literal["present", "absent", "unknown"]

# Observation.code values that ask "which symptom?": the finding is then in valueCodeableConcept.
SYMPTOM_QUESTIONS = frozenset({(LOINC, "75325-1")})
_PRESENT_ANSWERS = frozenset({(SNOMED, "52101004"), (SNOMED, "373066001"), (LOINC, "LA33-6")})
_ABSENT_ANSWERS = frozenset({(SNOMED, "2667000"), (SNOMED, "373067005"), (LOINC, "LA32-8")})
_ABSENT_WORDS = frozenset({"absent", "no", "negative", "false", "none", "denies", "not present"})

_IGNORED_STATUS: dict[str, frozenset[str]] = {
    "Observation": frozenset({"entered-in-error", "cancelled"}),
    "ServiceRequest": frozenset({"entered-in-error", "revoked"}),
    "ImagingStudy": frozenset({"entered-in-error", "cancelled"}),
    "DiagnosticReport": frozenset({"entered-in-error", "cancelled"}),
}
_IGNORED_VERIFICATION = frozenset({"entered-in-error", "refuted"})
_NOT_CURRENT_CLINICAL = frozenset({"inactive", "remission", "resolved"})


@dataclass(frozen=True, slots=True)
class Fact:
    """One clinical statement about the patient: a finding, a measurement, an order or a study."""

    reference: str
    resource_type: str
    keys: tuple[tuple[str, str], ...]
    label: str
    text: str
    presence: Presence
    time: FhirTime | None
    status: str | None
    value: float | None = None
    unit: str | None = None

    @property
    def date_text(self) -> str:
        return self.time.text if self.time else "undated"


@dataclass(frozen=True, slots=True)
class SetAside:
    """A resource the engine did not use, and why (shown in traces, never used as evidence)."""

    reference: str
    reason: str


@dataclass
class PatientRecord:
    """Everything the engine may read about one patient."""

    patient_id: str
    facts: list[Fact] = field(default_factory=list)
    resources: list[dict[str, Any]] = field(default_factory=list)
    set_aside: list[SetAside] = field(default_factory=list)
    issues: list[InputIssue] = field(default_factory=list)


def _codings(concept: Any) -> list[dict[str, Any]]:
    if not isinstance(concept, dict):
        return []
    return [c for c in concept.get("coding") or [] if isinstance(c, dict)]


def coding_keys(concept: Any) -> tuple[tuple[str, str], ...]:
    """The (system, code) keys of a CodeableConcept's codings that can match a value set."""
    keys = (coding_key(c.get("system"), c.get("code")) for c in _codings(concept))
    return tuple(k for k in keys if k is not None)


def _texts(*concepts: Any) -> list[str]:
    texts: list[str] = []
    for concept in concepts:
        if isinstance(concept, dict):
            if concept.get("text"):
                texts.append(str(concept["text"]))
            texts.extend(str(c["display"]) for c in _codings(concept) if c.get("display"))
    return texts


def _status_code(concept: Any) -> str | None:
    for coding in _codings(concept):
        if coding.get("code"):
            return str(coding["code"])
    return None


def _period_times(period: Any) -> list[FhirTime | None]:
    if not isinstance(period, dict):
        return []
    return [parse_fhir_time(period.get("end")), parse_fhir_time(period.get("start"))]


def names_patient(resource: dict[str, Any], patient_refs: frozenset[str]) -> bool:
    """Does the resource's subject name the patient (relative, absolute, versioned or Bundle fullUrl reference)?"""
    subject = resource.get("subject")
    reference = subject.get("reference") if isinstance(subject, dict) else None
    if not isinstance(reference, str):
        return False
    if reference in patient_refs:
        return True
    # Absolute and versioned references: .../Patient/123/_history/2 names Patient/123.
    parts = reference.split("/_history/")[0].rstrip("/").split("/")
    return len(parts) >= 2 and f"{parts[-2]}/{parts[-1]}" in patient_refs


def _observation_fact(resource: dict[str, Any], reference: str) -> Fact:
    code = resource.get("code")
    keys = coding_keys(code)
    value_concept = resource.get("valueCodeableConcept")
    texts = _texts(code, value_concept)
    label_source: Any = code
    presence: Presence = "present"
    value: float | None = None
    unit: str | None = None
    if value_concept is not None and SYMPTOM_QUESTIONS.intersection(keys):
        keys = coding_keys(value_concept)
        label_source = value_concept
    elif value_concept is not None:
        answer = set(coding_keys(value_concept))
        if answer & _ABSENT_ANSWERS:
            presence = "absent"
        elif answer & _PRESENT_ANSWERS:
            presence = "present"
    elif "valueBoolean" in resource:
        presence = "present" if resource["valueBoolean"] is True else "absent"
    elif isinstance(resource.get("valueQuantity"), dict):
        quantity = resource["valueQuantity"]
        if isinstance(quantity.get("value"), int | float):
            value = float(quantity["value"])
        unit = quantity.get("unit") or quantity.get("code")
    elif isinstance(resource.get("valueInteger"), int):
        value = float(resource["valueInteger"])
    elif isinstance(resource.get("valueString"), str):
        presence = "absent" if resource["valueString"].strip().lower() in _ABSENT_WORDS else "present"
    elif resource.get("dataAbsentReason") is not None:
        presence = "unknown"
    time = latest_of(
        [
            parse_fhir_time(resource.get("effectiveDateTime")),
            parse_fhir_time(resource.get("effectiveInstant")),
            *_period_times(resource.get("effectivePeriod")),
        ]
    ) or parse_fhir_time(resource.get("issued"))
    labels = _texts(label_source) or texts or ["(no display)"]
    return Fact(
        reference,
        "Observation",
        keys,
        labels[0],
        " | ".join(texts),
        presence,
        time,
        resource.get("status"),
        value,
        unit,
    )


def _condition_fact(resource: dict[str, Any], reference: str) -> Fact:
    code = resource.get("code")
    clinical = _status_code(resource.get("clinicalStatus"))
    if clinical is None and any(k.startswith("abatement") for k in resource):
        clinical = "resolved"
    time = latest_of(
        [
            parse_fhir_time(resource.get("onsetDateTime")),
            *_period_times(resource.get("onsetPeriod")),
            parse_fhir_time(resource.get("recordedDate")),
        ]
    )
    texts = _texts(code)
    return Fact(
        reference,
        "Condition",
        coding_keys(code),
        (texts or ["(no display)"])[0],
        " | ".join(texts),
        "present",
        time,
        clinical,
    )


def _order_fact(resource: dict[str, Any], reference: str) -> Fact:
    resource_type = resource["resourceType"]
    if resource_type == "ImagingStudy":
        concepts: list[Any] = list(resource.get("procedureCode") or [])
        times = [parse_fhir_time(resource.get("started"))]
    elif resource_type == "DiagnosticReport":
        concepts = [resource.get("code")]
        times = [
            parse_fhir_time(resource.get("effectiveDateTime")),
            *_period_times(resource.get("effectivePeriod")),
            parse_fhir_time(resource.get("issued")),
        ]
    else:
        concepts = [resource.get("code")]
        times = [
            parse_fhir_time(resource.get("occurrenceDateTime")),
            *_period_times(resource.get("occurrencePeriod")),
            parse_fhir_time(resource.get("authoredOn")),
        ]
    keys = tuple(k for concept in concepts for k in coding_keys(concept))
    texts = _texts(*concepts)
    return Fact(
        reference,
        resource_type,
        keys,
        (texts or ["(no display)"])[0],
        " | ".join(texts),
        "present",
        latest_of(times),
        resource.get("status"),
    )


def _why_set_aside(resource: dict[str, Any]) -> str | None:
    resource_type = resource["resourceType"]
    if resource_type == "Condition":
        verification = _status_code(resource.get("verificationStatus"))
        if verification in _IGNORED_VERIFICATION:
            return f"verificationStatus is {verification}"
        return None
    status = resource.get("status")
    if status in _IGNORED_STATUS.get(resource_type, frozenset()):
        return f"status is {status}"
    return None


_NORMALISERS = {
    "Condition": _condition_fact,
    "Observation": _observation_fact,
    "ServiceRequest": _order_fact,
    "ImagingStudy": _order_fact,
    "DiagnosticReport": _order_fact,
}


def raw_keys(resource: dict[str, Any]) -> list[tuple[str, str]]:
    """Every coding key a raw resource carries where a finding can sit (code, value, procedure code)."""
    concepts = [resource.get("code"), resource.get("valueCodeableConcept")]
    procedure_codes = resource.get("procedureCode")
    if isinstance(procedure_codes, list):
        concepts.extend(procedure_codes)
    return [k for concept in concepts for k in coding_keys(concept)]


def build_record(
    patient_id: str,
    resources: Iterable[dict[str, Any]],
    *,
    patient_aliases: Iterable[str] = (),
    relevant: Callable[[dict[str, Any]], bool] | None = None,
) -> PatientRecord:
    """Validate, filter and normalise resources; never trust the sender to have filtered by patient or status.

    `patient_aliases` are other references that name the patient (a Bundle entry's `fullUrl`). `relevant`,
    when given, skips resources no rule can read before the costly validation (most of a chart is labs).
    """
    record = PatientRecord(patient_id)
    patient_refs = frozenset({f"Patient/{patient_id}", *patient_aliases})
    for resource in resources:
        resource_type = resource.get("resourceType")
        if resource_type not in VALIDATED_TYPES:
            continue
        if relevant is not None and not relevant(resource):
            continue
        reference = reference_of(resource)
        problems = validate_resource(resource)
        if problems:
            record.issues.extend(problems)
            record.set_aside.append(SetAside(reference, "not valid FHIR R4 (see issues)"))
            continue
        if not names_patient(resource, patient_refs):
            record.set_aside.append(SetAside(reference, "subject is not the patient in context"))
            continue
        reason = _why_set_aside(resource)
        if reason:
            record.set_aside.append(SetAside(reference, reason))
            continue
        record.resources.append(resource)
        record.facts.append(_NORMALISERS[resource_type](resource, reference))
    return record


def is_current_status(fact: Fact) -> bool:
    """False for a Condition whose clinicalStatus says it is over (inactive, remission, resolved)."""
    return not (fact.resource_type == "Condition" and fact.status in _NOT_CURRENT_CLINICAL)
