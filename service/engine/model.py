"""The schema of what rule authors write in `rules/`. `rules/rule.schema.json` is generated from it.

Every model forbids unknown keys, so a typo in a rule file is an error at load, not a silent no-op.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, TypeAdapter, ValidationError, model_validator

Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", description="snake_case name")]
Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", description="kebab-case id")]
SemVer = Annotated[str, Field(pattern=r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$", description="MAJOR.MINOR.PATCH")]
Window = Annotated[
    str,
    Field(
        pattern=r"^(\$[a-z][a-z0-9_]*|P(\d+W|\d+D|\d+DT\d+H|T\d+H))$",
        description="ISO 8601 duration in weeks, days or hours (P30D, P1W, PT48H), or $parameter",
        examples=["P30D", "$current_window"],
    ),
]
_DURATION = TypeAdapter(timedelta)
# The CDS hooks a service of this rule set may answer (the protocol layer accepts the same list).
Hook = Literal[
    "patient-view",
    "order-select",
    "order-sign",
    "encounter-start",
    "appointment-book",
    "encounter-discharge",
    "order-dispatch",
]
Priority = Literal["routine", "urgent", "asap", "stat"]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Finding(StrictModel):
    """A clinical finding recorded as a Condition or an Observation (by code, or by value for a symptom question)."""

    valueset: Slug = Field(description="id of a value set in rules/valuesets/")
    within: Window | None = Field(
        default=None, description="only findings dated within this window before now count; omit for any time"
    )
    include_resolved: bool = Field(
        default=False,
        description="true: Conditions that are inactive, in remission or resolved still count (history of cancer)",
    )
    text_matches: str | None = Field(
        default=None,
        description="case-insensitive regular expression that the finding's text or display must also match "
        "(blind to negation: prefer text_mentions)",
    )
    text_mentions: Slug | None = Field(
        default=None,
        description="id of a value set whose terms the finding's text must name, and not deny (read with medspaCy "
        "ConText: 'worse at night' counts, 'no night pain' does not); a finding coded in that value set counts too",
    )
    not_followed_by: Slug | None = Field(
        default=None,
        description="id of a value set of studies (whole-spine MRI): the finding counts only when no such study was "
        "done, nor order completed, at or after the finding's onset (a sign no scan has looked at yet)",
    )


class Measurement(StrictModel):
    """A numeric Observation (valueQuantity or valueInteger) compared with thresholds."""

    valueset: Slug = Field(description="value set holding the Observation.code (e.g. LOINC 72514-3)")
    within: Window | None = None
    unit: str | None = Field(
        default=None,
        description="the thresholds' UCUM unit (e.g. mmol/L); values are converted to it, and a value in a unit that "
        "cannot be converted is not compared. Leave out for a unitless score (0-10 pain scale)",
    )
    at_least: float | None = None
    above: float | None = None
    at_most: float | None = None
    below: float | None = None

    @model_validator(mode="after")
    def _needs_threshold(self) -> Measurement:
        if all(v is None for v in (self.at_least, self.above, self.at_most, self.below)):
            raise ValueError("a measurement needs at least one of at_least, above, at_most, below")
        return self


class OrderOrStudy(StrictModel):
    """A ServiceRequest, ImagingStudy or DiagnosticReport (an order placed or a study done)."""

    valueset: Slug
    within: Window | None = None
    after_onset_of: Name | None = Field(
        default=None,
        description="a criterion: only an order or study dated at or after the onset of every finding that made it "
        "hold counts (an MRI taken before a new sign has not looked at it)",
    )


class Age(StrictModel):
    """The patient's age in whole years at the evaluation time, from Patient.birthDate (prefetch or fetch)."""

    at_least: int | None = Field(default=None, ge=0, le=150)
    above: int | None = Field(default=None, ge=0, le=150)
    at_most: int | None = Field(default=None, ge=0, le=150)
    below: int | None = Field(default=None, ge=0, le=150)

    @model_validator(mode="after")
    def _needs_threshold(self) -> Age:
        if all(v is None for v in (self.at_least, self.above, self.at_most, self.below)):
            raise ValueError("an age needs at least one of at_least, above, at_most, below")
        return self


class FhirPathCheck(StrictModel):
    """The escape hatch: a FHIRPath expression, true for some resource of the given type."""

    resource_type: Literal["Condition", "Observation", "ServiceRequest", "ImagingStudy", "DiagnosticReport"]
    expression: str = Field(min_length=1)


class Criterion(StrictModel):
    """A named test on the patient record. Exactly one of the kinds below."""

    description: str = Field(min_length=1, description="what a clinician reads in the card and the trace")
    finding: Finding | None = None
    measurement: Measurement | None = None
    order_or_study: OrderOrStudy | None = None
    fhirpath: FhirPathCheck | None = None
    age: Age | None = None
    all_of: list[Name] | None = Field(default=None, min_length=1)
    any_of: list[Name] | None = Field(default=None, min_length=1)
    none_of: list[Name] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> Criterion:
        kinds = [k for k in KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"a criterion needs exactly one of {', '.join(KINDS)}; found {kinds or 'none'}")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if getattr(self, k) is not None)

    @property
    def children(self) -> list[str]:
        return list(self.all_of or self.any_of or self.none_of or [])

    @property
    def depends_on(self) -> list[str]:
        """Criteria evaluated before this one: its children, and the one whose onsets an order must follow."""
        after = self.order_or_study.after_onset_of if self.order_or_study is not None else None
        return [*self.children, after] if after else self.children


KINDS = ("finding", "measurement", "order_or_study", "fhirpath", "age", "all_of", "any_of", "none_of")


class SuggestionTemplate(StrictModel):
    order: Slug = Field(description="key of an order template in rules/ruleset.yaml")
    priority: Priority
    label: str = Field(min_length=1, max_length=120)
    recommended: bool = True
    unless: Name | None = Field(
        default=None, description="criterion that, when it holds, removes this suggestion (e.g. MRI already done)"
    )


class LinkTemplate(StrictModel):
    label: str = Field(min_length=1)
    url: HttpUrl


class CardTemplate(StrictModel):
    indicator: Literal["info", "warning", "critical"]
    summary: str = Field(min_length=1, max_length=139, description="one sentence, under 140 characters")
    detail: str = Field(min_length=1, description="GitHub-flavoured markdown; evidence is appended by the service")
    suggestions: list[SuggestionTemplate] = Field(default_factory=list)
    override_reasons: list[Slug] = Field(default_factory=list, description="codes from rules/ruleset.yaml")
    links: list[LinkTemplate] = Field(default_factory=list)


class GuidelineSource(StrictModel):
    label: str = Field(min_length=1)
    url: HttpUrl
    citation: str | None = None


class NoticeCard(StrictModel):
    """A card the rule set shows when it cannot complete its check (a warning sign in the record could not be read)."""

    indicator: Literal["info", "warning", "critical"]
    summary: str = Field(min_length=1, max_length=139, description="one sentence, under 140 characters")
    detail: str = Field(min_length=1, description="markdown; the service appends the entries it could not read")
    source: GuidelineSource = Field(description="the guideline behind the advice in `detail`")


class Deadline(StrictModel):
    """How soon the whole-spine MRI is due once the rule fires (NICE NG234: 24 hours for suspected MSCC, a week for
    spinal pain suggesting metastases), for the hooks that keep the clock (appointment-book, encounter-discharge,
    order-dispatch)."""

    mri_within: str = Field(description="an ISO 8601 duration: PT24H, P7D", examples=["PT24H", "P7D"])
    counted_from: Name | None = Field(
        default=None,
        description="the criterion whose first holding starts the clock (default: the one that fires the rule): "
        "a finding from when it was known (the later of its onset and its recorded date), `all_of` from when the "
        "last of its parts held, `any_of` from when the first did",
    )

    def duration(self) -> timedelta | None:
        """`mri_within` as a positive duration, or None when it is not one (the loader names the problem)."""
        try:
            within = _DURATION.validate_python(self.mri_within)
        except ValidationError:
            return None
        return within if within > timedelta(0) else None


class RuleVersion(StrictModel):
    """One version of one rule: `rules/<id>/<version>.yaml`."""

    id: Slug
    version: SemVer
    status: Literal["draft", "active", "retired"]
    title: str = Field(min_length=1, max_length=120)
    description: str = Field(min_length=1)
    source: GuidelineSource
    hooks: list[str] | None = Field(
        default=None, min_length=1, description="hooks this rule runs for; omit for every hook the rule set serves"
    )
    parameters: dict[Name, str | float] = Field(default_factory=dict)
    criteria: dict[Name, Criterion] = Field(min_length=1)
    when: Name = Field(description="the criterion that makes the rule fire")
    deadline: Deadline | None = Field(
        default=None, description="when the whole-spine MRI is due; without it the deadline hooks never card on it"
    )
    card: CardTemplate


class TopicCoding(StrictModel):
    system: str
    code: str
    display: str


class OrderKind(StrictModel):
    """A kind of order within a trigger (spine X-ray, CT, regional MRI), told apart by words in its name."""

    name: str = Field(min_length=1, description="how the headline calls it: 'Spine X-ray'")
    words: list[str] = Field(min_length=1, description="words, any of them in its name: [x-ray, xr]")
    advice: str = Field(min_length=1, description="markdown shown in the card about an order of this kind")


class DraftOrderTrigger(StrictModel):
    """A kind of draft order that makes an order hook answer, and what the card says about it."""

    name: Slug
    resource_type: Literal["ServiceRequest", "MedicationRequest"]
    code_valueset: Slug | None = Field(
        default=None, description="the order's code (ServiceRequest.code, medicationCodeableConcept) is in this set"
    )
    reason_valueset: Slug | None = Field(default=None, description="one of the order's reasonCode is in this set")
    advice: str = Field(min_length=1, description="markdown shown in the card about this order")
    headline: str | None = Field(
        default=None,
        max_length=120,
        description="the card's summary on an order hook (so it does not repeat patient-view's): `{order}` is the "
        "kind of order (a `kinds` name, else `order_name`), `{priority}` the priority of the suggestion of `offers`",
    )
    order_name: str = Field(default="order", min_length=1, description="what to call such an order in the headline")
    kinds: list[OrderKind] = Field(
        default_factory=list,
        description="wording by kind of order, chosen by the words of the order's name (first kind that matches)",
    )
    offers: Slug | None = Field(
        default=None,
        description="the order of `orders` the headline is about (the whole-spine MRI): when the rule does not offer "
        "it (already done or booked), the card keeps the rule's own summary; `{priority}` is its priority",
    )
    replace: bool = Field(
        default=False,
        description="the suggestion of `offers` also deletes the draft (`delete` then `create`, one suggestion), so "
        "the clinician swaps the draft for it in one step",
    )

    @model_validator(mode="after")
    def _needs_a_test(self) -> DraftOrderTrigger:
        if self.code_valueset is None and self.reason_valueset is None:
            raise ValueError("a draft-order trigger needs code_valueset, reason_valueset or both")
        if self.replace and self.offers is None:
            raise ValueError("replace needs offers: the order that takes the draft's place")
        if self.headline and "{priority}" in self.headline and self.offers is None:
            raise ValueError("{priority} in the headline needs offers: the order whose priority it is")
        return self


class ServiceEntry(StrictModel):
    """One discovery entry: a hook this rule set answers."""

    id: Slug
    hook: Hook
    title: str
    description: str
    usage_requirements: str | None = None
    prefetch: dict[str, str] = Field(min_length=1)
    optional_prefetch: list[str] = Field(
        default_factory=list,
        description="prefetch keys the service can do without (fetched when possible, else evaluated without)",
    )
    draft_orders: list[DraftOrderTrigger] | None = Field(
        default=None,
        min_length=1,
        description="order hooks: answer only when a draft order (a selected one, for order-select) matches one",
    )


NonAdherenceCategory = Literal[
    "cds-not-applicable",
    "cds-suboptimal-context",
    "recipient-disagrees-evidence",
    "recipient-concerns-outcomes",
    "does-not-align-preferences",
    "not-convenient-feasible",
]


class OverrideReason(StrictModel):
    """A reason a clinician may give for dismissing a card, and the category of the HL7 non-adherence reason
    code system (CDS Hooks 3.0) it belongs to: cards offer the category's code with this display, so overrides
    compare across sites and this service still tells its own reasons apart."""

    display: str = Field(min_length=1, max_length=120)
    category: NonAdherenceCategory


class OrderTemplate(StrictModel):
    """A FHIR ServiceRequest the card offers; the service fills subject, priority, dates and reasons."""

    description: str
    resource: dict[str, Any]


class RuleSetConfig(StrictModel):
    """`rules/ruleset.yaml`: what the rule set serves and the shared pieces every rule refers to.

    Top-level keys starting with `x-` are ignored: they hold YAML anchors shared by several services.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"patternProperties": {"^x-": {}}})

    @model_validator(mode="before")
    @classmethod
    def _drop_anchor_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))}
        return data

    name: Slug
    title: str
    precedence: list[Slug] = Field(
        default_factory=list,
        description="every rule id, in the order in which rules of the same urgency win the card (first wins); "
        "a new rule must be placed here explicitly",
    )
    topic: TopicCoding
    override_reason_system: str = Field(
        description="the service's own code system for its reasons (reports, and feedback from clients that were "
        "offered these codes before the HL7 categories)"
    )
    override_reasons: dict[Slug, OverrideReason] = Field(
        description="code: what the clinician reads, and its HL7 non-adherence category (the code cards offer)"
    )
    orders: dict[Slug, OrderTemplate]
    whole_spine_mri: Slug = Field(
        default="whole-spine-mri",
        description="the value set that makes an appointment, order or study a whole-spine MRI (deadline hooks)",
    )
    unreadable_card: NoticeCard = Field(
        description="shown when no rule fired but a possible warning sign in the record could not be read"
    )
    services: list[ServiceEntry] = Field(min_length=1)
