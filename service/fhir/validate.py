"""Structural FHIR R4 validation with fhir.resources (R4B models, which read R4 Conditions and Observations).

Only the resource types the rules read are validated deeply: validating every resource an EHR sends
would cost time and report problems that cannot change a card. A problem is *fatal* only where the rules
cannot do without the field (what the resource is about, whose it is); any other problem is reported and the
resource still counts, because dropping a red flag over a malformed field nobody reads would be the worse error.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import orjson
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from service.errors import validation_errors
from service.fhir.version import EXPECTED, older_version_sign

VALIDATED_TYPES = frozenset({"Condition", "Observation", "ServiceRequest", "ImagingStudy", "DiagnosticReport"})

# Fields without which a resource says nothing usable: what it is (its code) and whose it is.
_ESSENTIAL_FIELDS: dict[str, frozenset[str]] = {
    "ImagingStudy": frozenset({"procedureCode", "subject"}),
}
_DEFAULT_ESSENTIAL = frozenset({"code", "subject"})
ONE_ELEMENT_ARRAY = "a single object where FHIR R4 wants an array: read as a one-element array"

Outcome = Literal["counted", "set aside"]


@dataclass(frozen=True, slots=True)
class InputIssue:
    """One problem with one input resource: where (FHIRPath-like) and what, never the offending value.

    `outcome` says what became of the resource: still `counted` (the problem is in a field the rules can do
    without) or `set aside`.
    """

    reference: str
    location: str
    message: str
    outcome: Outcome = "set aside"

    def as_dict(self) -> dict[str, str]:
        return {"resource": self.reference, "location": self.location, "message": self.message, "outcome": self.outcome}


@dataclass(frozen=True, slots=True)
class Validated:
    """A resource after validation: the (possibly repaired) resource, its problems, and whether any is fatal."""

    resource: dict[str, Any]
    issues: list[InputIssue]
    fatal: bool


@cache
def _model(resource_type: str) -> Any:
    return get_fhir_model_class(resource_type)


def reference_of(resource: dict[str, Any]) -> str:
    """`Type/id` of a raw resource, with `?` for what is missing."""
    parts = (resource.get("resourceType"), resource.get("id"))
    return "/".join(part if isinstance(part, str) else "?" for part in parts)


def _location(resource_type: str, loc: tuple[int | str, ...]) -> str:
    path = resource_type
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _wrap_single_objects(resource: dict[str, Any], error: ValidationError) -> dict[str, Any] | None:
    """A copy with each object that sits where an array is wanted wrapped in a one-element array, or None."""
    repaired: dict[str, Any] | None = None
    for e in validation_errors(error):
        if e["type"] != "list_type" or not e["loc"]:
            continue
        repaired = repaired or copy.deepcopy(resource)
        parent: Any = repaired
        for part in e["loc"][:-1]:
            try:
                parent = parent[part]
            except (KeyError, IndexError, TypeError):
                parent = None
                break
        last = e["loc"][-1]
        if isinstance(parent, dict) and isinstance(parent.get(last), dict):
            parent[last] = [parent[last]]
    return repaired


def _is_fatal(resource_type: str, loc: tuple[int | str, ...]) -> bool:
    essential = _ESSENTIAL_FIELDS.get(resource_type, _DEFAULT_ESSENTIAL)
    return not loc or str(loc[0]) in essential


class _Outcomes:
    """What validation said of resources seen before, by a digest of their JSON text.

    Validation is a pure function of the resource, and an EHR sends the same chart again each time it is opened:
    a Condition validated once need not be validated again. Only a digest is kept (never the resource, which is
    patient data), with the issues (locations and messages, never values); a resource that needed repair is not
    kept, as its repaired copy would be. Bounded: when full, it starts again empty.
    """

    def __init__(self, size: int = 50_000) -> None:
        self.size = size
        self.known: dict[bytes, tuple[tuple[InputIssue, ...], bool]] = {}

    @staticmethod
    def digest(resource: dict[str, Any]) -> bytes | None:
        """Different resources never share a digest. orjson writes the text fastest, but writes NaN and Infinity
        as `null`: its text is used only when it holds no `null` at all (FHIR JSON has none), and refuses lone
        surrogates and huge integers; the standard encoder writes those texts instead (NaN stays NaN, a surrogate
        stays escaped). The two encoders' digests are personalised apart (blake2b `person`)."""
        try:
            text = orjson.dumps(resource)
            if b"null" not in text:
                return hashlib.blake2b(text, digest_size=16, person=b"orjson").digest()
        except TypeError:
            pass
        try:
            spelled = json.dumps(resource, separators=(",", ":"), allow_nan=True)
        except (TypeError, ValueError):
            return None
        return hashlib.blake2b(spelled.encode(), digest_size=16, person=b"json").digest()

    def remember(self, digest: bytes, issues: list[InputIssue], fatal: bool) -> None:
        if len(self.known) >= self.size:
            self.known.clear()
        self.known[digest] = (tuple(issues), fatal)


_OUTCOMES = _Outcomes()


def validate(resource: dict[str, Any]) -> Validated:
    """Validate one resource (or recall the verdict on the same JSON): see `_validate`."""
    digest = _Outcomes.digest(resource)
    if digest is not None:
        known = _OUTCOMES.known.get(digest)
        if known is not None:
            return Validated(resource, list(known[0]), known[1])
    checked = _validate(resource)
    if digest is not None and checked.resource is resource:
        _OUTCOMES.remember(digest, checked.issues, checked.fatal)
    return checked


def _validate(resource: dict[str, Any]) -> Validated:
    """Validate one resource; repair single objects given for arrays (a common client deviation), visibly."""
    reference = reference_of(resource)
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        return Validated(resource, [InputIssue(reference, "resourceType", "resourceType is missing")], True)
    older = older_version_sign(resource)
    if older is not None:  # never read: fields mean other things in other versions
        return Validated(resource, [InputIssue(reference, older[0], older[1])], True)
    try:
        model = _model(resource_type)
    except (ValueError, KeyError):
        unknown = InputIssue(reference, "resourceType", f"unknown resource type {resource_type!r} in {EXPECTED}")
        return Validated(resource, [unknown], True)
    issues: list[InputIssue] = []
    for _ in range(3):  # each pass can only wrap objects one level deeper; real data needs one
        try:
            model.model_validate(resource)
            return Validated(resource, issues, False)
        except ValidationError as error:
            repaired = _wrap_single_objects(resource, error)
            if repaired is None or repaired == resource:
                # The message is pydantic's, with the input value left out: it may be patient data.
                found = [(tuple(e["loc"]), e["msg"]) for e in validation_errors(error)]
                fatal = any(_is_fatal(resource_type, loc) for loc, _ in found)
                outcome: Outcome = "set aside" if fatal else "counted"
                issues += [InputIssue(reference, _location(resource_type, loc), msg, outcome) for loc, msg in found]
                return Validated(resource, issues, fatal)
            issues += [
                InputIssue(reference, _location(resource_type, tuple(e["loc"])), ONE_ELEMENT_ARRAY, "counted")
                for e in validation_errors(error)
                if e["type"] == "list_type"
            ]
            resource = repaired
    return Validated(resource, issues, True)


class ValidateOnce:
    """`validate` for one call, remembering each resource's result: a draft order is read both as part of the
    record and as an order trigger, and is validated once."""

    def __init__(self) -> None:
        self._done: dict[int, tuple[dict[str, Any], Validated]] = {}

    def __call__(self, resource: dict[str, Any]) -> Validated:
        hit = self._done.get(id(resource))
        if hit is not None and hit[0] is resource:
            return hit[1]
        result = validate(resource)
        self._done[id(resource)] = (resource, result)  # holding the resource keeps its id from being reused
        return result


def validate_resource(resource: dict[str, Any]) -> list[InputIssue]:
    """Problems with one resource; empty when it is valid FHIR R4 (as the R4B models read it)."""
    return validate(resource).issues
