"""Resources from an older FHIR version (DSTU2, STU3) told apart from merely invalid R4, so the refusal can say
which version was expected: the CDS Hooks Sandbox's default FHIR server is DSTU2, and its Conditions would
otherwise be set aside with a puzzling "field required".

Each sign below is a field or shape that R4 does not allow, so valid R4 never matches.
"""

from __future__ import annotations

from typing import Any

EXPECTED = "FHIR R4 (4.0.1)"

# (resource type, field) -> the version that has it
_OLD_FIELDS: dict[tuple[str, str], str] = {
    ("Condition", "patient"): "DSTU2",
    ("Condition", "dateRecorded"): "DSTU2",
    ("Condition", "assertedDate"): "STU3",
    ("Observation", "comments"): "DSTU2",
    ("MedicationRequest", "patient"): "DSTU2",
    ("MedicationOrder", "patient"): "DSTU2",
    ("DiagnosticOrder", "subject"): "DSTU2",
    ("ProcedureRequest", "subject"): "STU3",
}
# fields that R4 made a CodeableConcept where older versions had a plain code
_CODE_BECAME_CONCEPT = {"Condition": ("clinicalStatus", "verificationStatus")}


def older_version_sign(resource: dict[str, Any]) -> tuple[str, str] | None:
    """(location, message) when the resource looks like DSTU2 or STU3; None otherwise."""
    resource_type = str(resource.get("resourceType", ""))
    for (kind, name), version in _OLD_FIELDS.items():
        if kind == resource_type and name in resource:
            return f"{kind}.{name}", _message(version, f"{kind}.{name} is a {version} field")
    for name in _CODE_BECAME_CONCEPT.get(resource_type, ()):
        if isinstance(resource.get(name), str):
            return f"{resource_type}.{name}", _message(
                "DSTU2 or STU3", f"{resource_type}.{name} is a plain code, as before R4 (R4 wants a CodeableConcept)"
            )
    return None


def _message(version: str, sign: str) -> str:
    return f"looks like FHIR {version} ({sign}); this service reads {EXPECTED}: connect it to an R4 FHIR server"
