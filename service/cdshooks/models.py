"""CDS Hooks 2.0 shapes as pydantic models.

Input models are tolerant: unknown fields and `extension` pass through, because EHRs add their own.
Output models are strict: unknown fields are refused, and optional fields are None or non-empty (the spec
forbids nulls and empty arrays in responses), so `dump()` can simply drop Nones.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator
from pydantic_core import PydanticSerializationError

from service.engine.model import Hook
from service.textsafe import without_lone_surrogates

T = TypeVar("T")
NonEmpty = Annotated[list[T], Field(min_length=1)]
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
RESOURCE_REF = r"^[A-Z][A-Za-z]+/[A-Za-z0-9\-\.]{1,64}$"
FHIR_ID = r"^[A-Za-z0-9\-\.]{1,64}$"


class Tolerant(BaseModel):
    model_config = ConfigDict(extra="allow")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)

    def dump_json(self) -> bytes:
        """`dump()` as JSON bytes, written by pydantic-core in one pass (no dict built in between). A lone
        surrogate from patient data (valid in JSON's \\ud800 escapes, not in UTF-8) is shown as U+FFFD."""
        try:
            return self.model_dump_json(exclude_none=True).encode()
        except PydanticSerializationError:
            return json.dumps(without_lone_surrogates(self.dump()), ensure_ascii=False).encode()


# ---- requests -------------------------------------------------------------------------------------------------


class FhirAuthorization(Tolerant):
    access_token: str = Field(min_length=1)
    token_type: Literal["Bearer"]
    expires_in: int = Field(ge=0)
    scope: str = Field(min_length=1)
    subject: str = Field(min_length=1)
    patient: str | None = None


def _context_schema(schema: dict[str, Any]) -> None:
    """Document `context` as the union of the hook contexts we accept (the model keeps it a plain object)."""
    schema.clear()
    schema["anyOf"] = [m.model_json_schema() for m in dict.fromkeys(CONTEXT_MODELS.values())]


class HookRequest(Tolerant):
    """A call to a CDS Service (spec 2.0 "HTTP Request")."""

    model_config = ConfigDict(
        extra="allow", json_schema_extra={"dependentRequired": {"fhirAuthorization": ["fhirServer"]}}
    )

    hook: Hook = Field(description="the hooks this service answers; each service id answers one of them")
    hookInstance: str = Field(pattern=UUID_PATTERN, description="a UUID for this hook call")  # noqa: N815
    fhirServer: HttpUrl | None = None  # noqa: N815
    fhirAuthorization: FhirAuthorization | None = None  # noqa: N815
    context: dict[str, Any] = Field(json_schema_extra=_context_schema)
    prefetch: dict[str, Any] | None = None
    extension: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _authorization_needs_server(self) -> HookRequest:
        if self.fhirAuthorization is not None and self.fhirServer is None:
            raise ValueError("fhirAuthorization was sent without fhirServer")
        return self


class HookContext(Tolerant):
    """What every hook context this service reads holds: the patient, and the user and encounter when given."""

    userId: str | None = Field(default=None, pattern=RESOURCE_REF)  # noqa: N815
    patientId: str = Field(pattern=FHIR_ID)  # noqa: N815
    encounterId: str | None = Field(default=None, pattern=FHIR_ID)  # noqa: N815


class PatientViewContext(HookContext):
    userId: str = Field(pattern=RESOURCE_REF)  # noqa: N815


class EncounterStartContext(PatientViewContext):
    encounterId: str = Field(pattern=FHIR_ID)  # noqa: N815


class OrderSignContext(PatientViewContext):
    draftOrders: dict[str, Any]  # noqa: N815

    @model_validator(mode="after")
    def _draft_orders_is_bundle(self) -> OrderSignContext:
        if self.draftOrders.get("resourceType") != "Bundle":
            raise ValueError("draftOrders must be a FHIR Bundle")
        return self


class OrderSelectContext(OrderSignContext):
    selections: NonEmpty[str]


class AppointmentBookContext(PatientViewContext):
    """The proposed Appointments: a Bundle, as the hook defines; a plain array is read too (and named)."""

    appointments: dict[str, Any] | list[Any]

    @model_validator(mode="after")
    def _appointments_are_a_bundle_or_a_list(self) -> AppointmentBookContext:
        if isinstance(self.appointments, dict) and self.appointments.get("resourceType") != "Bundle":
            raise ValueError("appointments must be a FHIR Bundle of Appointments")
        return self


class EncounterDischargeContext(PatientViewContext):
    encounterId: str = Field(pattern=FHIR_ID)  # noqa: N815


class OrderDispatchContext(HookContext):
    """order-dispatch names no user; the orders sent, to whom, and the fulfilment Tasks with their timing."""

    dispatchedOrders: NonEmpty[str] = Field()  # noqa: N815
    performer: str = Field(min_length=1)
    fulfillmentTasks: list[dict[str, Any]] | None = None  # noqa: N815


CONTEXT_MODELS: dict[str, type[HookContext]] = {
    "patient-view": PatientViewContext,
    "encounter-start": EncounterStartContext,
    "order-sign": OrderSignContext,
    "order-select": OrderSelectContext,
    "appointment-book": AppointmentBookContext,
    "encounter-discharge": EncounterDischargeContext,
    "order-dispatch": OrderDispatchContext,
}

# The CDS Hooks version this service implements, as 3.0 discovery advertises it (a field only 3.0 defines; every
# 2.0 shape is kept, so 2.0 clients are served as before), and the `hookVersion` of each hook definition it follows
# (HL7 CDS Hooks Library 1.0.1: each hook's metadata table).
SPEC_VERSION = "3.0.0"
HOOK_VERSIONS: dict[str, str] = {
    "patient-view": "1.0",
    "encounter-start": "1.0",
    "order-sign": "1.0",
    "order-select": "1.0",
    # HL7 CDS Hooks Library (main): appointment-book 1.0, encounter-discharge 1.0, order-dispatch 1.1
    "appointment-book": "1.0",
    "encounter-discharge": "1.0",
    "order-dispatch": "1.1",
}


# Feedback is stored: its text must be text every database stores (no NUL, no lone surrogate) and fit its column
# (store/tables.py). The schema says what JSON Schema can say portably (no NUL, the lengths); a lone surrogate
# (valid JSON, not valid Unicode) is refused by the validator below. Either way a 400 names the field: feedback
# that can never be stored is never answered "send it again".
STORABLE = r"^[^\x00]*$"


def _no_lone_surrogate(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("contains a lone surrogate (not valid Unicode text)") from None
    return value


class _Storable(BaseModel):
    model_config = ConfigDict(extra="allow")

    @field_validator("*", mode="before")
    @classmethod
    def _storable_text(cls, value: Any) -> Any:
        return _no_lone_surrogate(value)


class FeedbackCoding(_Storable):
    model_config = ConfigDict(extra="forbid")
    system: str = Field(min_length=1, max_length=300, pattern=STORABLE)
    code: str = Field(min_length=1, max_length=100, pattern=STORABLE)
    display: str | None = Field(default=None, max_length=300, pattern=STORABLE)


class OverrideReasonChoice(_Storable):
    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={  # cds-fb-3: a reason, a comment, or both (a null is neither)
            "anyOf": [
                {"required": ["reason"], "properties": {"reason": {"type": "object"}}},
                {"required": ["userComment"], "properties": {"userComment": {"type": "string"}}},
            ]
        },
    )

    reason: FeedbackCoding | None = None
    userComment: str | None = Field(default=None, max_length=10_000, pattern=STORABLE)  # noqa: N815

    @model_validator(mode="after")
    def _says_something(self) -> OverrideReasonChoice:
        if self.reason is None and self.userComment is None:  # CDS Hooks 3.0 cds-fb-3
            raise ValueError("an overrideReason needs a reason, a userComment, or both")
        return self


class AcceptedSuggestion(_Storable):
    id: str = Field(min_length=1, max_length=200, pattern=STORABLE)


class FeedbackItem(_Storable):
    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={  # CDS Hooks: acceptedSuggestions is required when the outcome is accepted (cds-fb-2)
            "if": {"properties": {"outcome": {"const": "accepted"}}, "required": ["outcome"]},
            "then": {
                "required": ["acceptedSuggestions"],
                "properties": {"acceptedSuggestions": {"type": "array", "minItems": 1}},
            },
        },
    )

    card: str = Field(min_length=1, max_length=64, pattern=STORABLE)
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[AcceptedSuggestion] | None = None  # noqa: N815
    overrideReason: OverrideReasonChoice | None = None  # noqa: N815
    outcomeTimestamp: str = Field(  # noqa: N815
        max_length=40, pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"
    )

    @model_validator(mode="after")
    def _accepted_names_its_suggestions(self) -> FeedbackItem:
        if self.outcome == "accepted" and not self.acceptedSuggestions:  # CDS Hooks 2.0 / 3.0 cds-fb-2
            raise ValueError("an accepted card needs acceptedSuggestions: the suggestions the user accepted")
        return self


class FeedbackRequest(_Storable):
    feedback: NonEmpty[FeedbackItem]


# ---- responses ------------------------------------------------------------------------------------------------


class Coding(Strict):
    system: str = Field(min_length=1)
    code: str = Field(min_length=1)
    display: str | None = None


class Source(Strict):
    label: str = Field(min_length=1)
    url: str | None = None
    icon: str | None = None
    topic: Coding | None = None


class Action(Strict):
    type: Literal["create", "update", "delete"]
    description: str = Field(min_length=1)
    resource: dict[str, Any] | None = None
    resourceId: str | None = None  # noqa: N815


class Suggestion(Strict):
    label: str = Field(min_length=1)
    uuid: str | None = None
    isRecommended: bool | None = None  # noqa: N815
    actions: NonEmpty[Action] | None = None


class Link(Strict):
    label: str = Field(min_length=1)
    url: str = Field(min_length=1)
    type: Literal["absolute", "smart"]
    appContext: str | None = None  # noqa: N815
    autolaunchable: bool | None = None


class Card(Strict):
    uuid: str | None = None
    summary: str = Field(min_length=1, max_length=139)
    detail: str | None = None
    indicator: Literal["info", "warning", "critical"]
    source: Source
    suggestions: NonEmpty[Suggestion] | None = None
    selectionBehavior: Literal["at-most-one", "any"] | None = None  # noqa: N815
    overrideReasons: NonEmpty[Coding] | None = None  # noqa: N815
    links: NonEmpty[Link] | None = None
    extension: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _suggestions_need_behaviour(self) -> Card:
        if self.suggestions and self.selectionBehavior is None:
            raise ValueError("selectionBehavior is required when suggestions are present")
        if self.overrideReasons and any(not r.display for r in self.overrideReasons):
            raise ValueError("every override reason needs a display")
        return self


class CdsResponse(Strict):
    cards: list[Card]
    systemActions: NonEmpty[Action] | None = None  # noqa: N815
    extension: dict[str, Any] | None = None


class DiscoveryService(Strict):
    hook: str
    hookVersion: str | None = None  # noqa: N815
    title: str | None = None
    description: str
    id: str
    prefetch: dict[str, str] | None = None
    usageRequirements: str | None = None  # noqa: N815
    extension: dict[str, Any] | None = None


class Discovery(Strict):
    version: str | None = None
    services: list[DiscoveryService]
