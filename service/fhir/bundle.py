"""A plain FHIR Bundle (collection, searchset, transaction) as one patient's resources, for /evaluate and tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from fhir.resources.R4B.bundle import Bundle
from pydantic import ValidationError

from service.errors import InvalidFhir, field_problems, validation_errors

_ENTRY_FIELDS = frozenset(
    {"id", "extension", "modifierExtension", "link", "fullUrl", "resource", "search", "request", "response"}
)


# Bundle.type has a required binding that fhir.resources does not enforce.
BundleType = Literal[
    "document",
    "message",
    "transaction",
    "transaction-response",
    "batch",
    "batch-response",
    "history",
    "searchset",
    "collection",
]
BUNDLE_TYPES = frozenset(get_args(BundleType))


@dataclass
class PatientBundle:
    patient_id: str
    aliases: set[str]
    resources: list[dict[str, Any]]


def _problems(error: ValidationError, prefix: str) -> list[tuple[str, str]]:
    found = field_problems(validation_errors(error), whole="", fhirpath=True)
    return [(f"{prefix}.{location}" if location else prefix, message) for location, message in found]


def read_patient_bundle(raw: Any) -> PatientBundle:
    """Check the Bundle's own structure (not its entries: those are validated one by one later) and find the patient.

    The patient is the Bundle's one Patient resource; without one, the one patient all subjects name.
    """
    if not isinstance(raw, dict) or raw.get("resourceType") != "Bundle":
        raise InvalidFhir("the body must be a FHIR Bundle", [("Bundle", "resourceType must be Bundle")])
    shell = {k: v for k, v in raw.items() if k != "entry"}
    try:
        Bundle.model_validate(shell)
    except ValidationError as error:
        raise InvalidFhir("the Bundle is not valid FHIR R4", _problems(error, "Bundle")) from None
    if raw.get("type") not in BUNDLE_TYPES:
        raise InvalidFhir(
            "the Bundle is not valid FHIR R4", [("Bundle.type", f"must be one of {sorted(BUNDLE_TYPES)}")]
        )
    entries = raw.get("entry") or []
    if not isinstance(entries, list):
        raise InvalidFhir("the Bundle is not valid FHIR R4", [("Bundle.entry", "must be an array")])
    resources: list[dict[str, Any]] = []
    aliases: set[str] = set()
    patients: list[str] = []
    problems: list[tuple[str, str]] = []
    for i, entry in enumerate(entries):
        where = f"Bundle.entry[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("resource"), dict):
            problems.append((where, "each entry needs a resource object"))
            continue
        unknown = set(entry) - _ENTRY_FIELDS
        if unknown:
            problems.append((where, f"unknown entry fields: {', '.join(sorted(unknown))}"))
        resource = entry["resource"]
        if not isinstance(resource.get("resourceType"), str):
            problems.append((f"{where}.resource.resourceType", "must be a string"))
            continue
        if resource.get("resourceType") == "Patient":
            if not isinstance(resource.get("id"), str):
                problems.append((f"{where}.resource.id", "the Patient needs an id"))
                continue
            patients.append(resource["id"])
            if isinstance(entry.get("fullUrl"), str):
                aliases.add(entry["fullUrl"])
        resources.append(resource)
    if problems:
        raise InvalidFhir("the Bundle is not valid FHIR R4", problems)
    distinct = sorted(set(patients))
    if len(distinct) > 1:
        raise InvalidFhir("the Bundle holds more than one patient", [("Bundle.entry", f"patients: {distinct}")])
    if not distinct:
        subjects = {
            str((r.get("subject") or {}).get("reference", "")).split("/")[-1]
            for r in resources
            if isinstance(r.get("subject"), dict)
        }
        subjects.discard("")
        if len(subjects) != 1:
            raise InvalidFhir(
                "the Bundle names no single patient",
                [("Bundle.entry", "add the Patient resource, or make every subject the same patient")],
            )
        distinct = sorted(subjects)
    return PatientBundle(distinct[0], aliases, resources)
