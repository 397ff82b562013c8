"""Structural FHIR R4 validation with fhir.resources (R4B models, which read R4 Conditions and Observations).

Only the resource types the rules read are validated deeply: validating every resource an EHR sends
would cost time and report problems that cannot change a card.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

VALIDATED_TYPES = frozenset({"Condition", "Observation", "ServiceRequest", "ImagingStudy", "DiagnosticReport"})


@dataclass(frozen=True, slots=True)
class InputIssue:
    """One problem with one input resource: where (FHIRPath-like) and what, never the offending value."""

    reference: str
    location: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"resource": self.reference, "location": self.location, "message": self.message}


@cache
def _model(resource_type: str) -> Any:
    return get_fhir_model_class(resource_type)


def reference_of(resource: dict[str, Any]) -> str:
    """`Type/id` of a raw resource, with `?` for what is missing."""
    return f"{resource.get('resourceType', '?')}/{resource.get('id', '?')}"


def _location(resource_type: str, loc: tuple[int | str, ...]) -> str:
    path = resource_type
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def validate_resource(resource: dict[str, Any]) -> list[InputIssue]:
    """Problems with one resource; empty when it is valid FHIR R4 (as the R4B models read it)."""
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        return [InputIssue(reference_of(resource), "resourceType", "resourceType is missing")]
    try:
        model = _model(resource_type)
    except ValueError:
        return [InputIssue(reference_of(resource), "resourceType", f"unknown resource type {resource_type!r}")]
    try:
        model.model_validate(resource)
    except ValidationError as error:
        # The message is pydantic's, with the input value left out: it may be patient data.
        return [
            InputIssue(reference_of(resource), _location(resource_type, tuple(e["loc"])), e["msg"])
            for e in error.errors(include_url=False, include_input=False)
        ]
    return []
