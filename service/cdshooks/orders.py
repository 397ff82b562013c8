"""Order hooks: which draft orders make the service answer (non-MRI spine imaging, analgesia for back pain, an
MRI already drafted), and what the card should say about each.

An order hook with no matching draft stays silent, even when a rule fires: patient-view already showed that card,
and repeating it on every unrelated order is alert fatigue.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from service.engine.model import DraftOrderTrigger, ServiceEntry
from service.engine.valuesets import CodeIndex
from service.fhir.record import coding_keys, names_patient
from service.fhir.validate import ONE_ELEMENT_ARRAY, InputIssue, Validated, reference_of, validate


@dataclass(frozen=True)
class MatchedDraft:
    trigger: DraftOrderTrigger
    reference: str
    label: str


def _label(resource: dict[str, Any]) -> str:
    concept = resource.get("code") or resource.get("medicationCodeableConcept") or {}
    if concept.get("text"):
        return str(concept["text"])
    displays = [c.get("display") for c in concept.get("coding") or [] if c.get("display")]
    return str(displays[0]) if displays else "this order"


def _in(codes: CodeIndex, concepts: list[Any], valueset: str | None) -> bool:
    if valueset is None:
        return True
    return any(valueset in codes.lookup(key) for concept in concepts for key in coding_keys(concept))


def considered_drafts(hook: str, drafts: list[dict[str, Any]], selections: list[str] | None) -> list[dict[str, Any]]:
    """order-select looks at the orders just selected; order-sign at every draft being signed."""
    if hook != "order-select" or not selections:
        return drafts
    chosen = set(selections)
    return [d for d in drafts if reference_of(d) in chosen]


def _refusal(draft: dict[str, Any], checked: Validated, patient: frozenset[str]) -> InputIssue | None:
    """Why a draft is not acted on, or None. A single object where R4 wants an array is repaired and read (a
    common client habit, named in the answer's issues); any other problem, or another patient, sets it aside."""
    reference = reference_of(draft)
    problems = [i for i in checked.issues if i.message != ONE_ELEMENT_ARRAY]
    if problems:
        first = problems[0]
        return InputIssue(reference, first.location, f"draft order not acted on: {first.message}", "set aside")
    if not names_patient(checked.resource, patient):
        return InputIssue(reference, "subject", "draft order not acted on: it is for another patient", "set aside")
    return None


def match_drafts(
    service: ServiceEntry,
    codes: CodeIndex,
    drafts: list[dict[str, Any]],
    patient_id: str,
    validator: Callable[[dict[str, Any]], Validated] = validate,
) -> tuple[list[MatchedDraft], list[InputIssue]]:
    """The drafts that make this service answer, and an issue for each draft it could not act on (and each repair):
    a dropped order is never silent."""
    matched: list[MatchedDraft] = []
    issues: list[InputIssue] = []
    patient = frozenset({f"Patient/{patient_id}"})
    for draft in drafts:
        checked = validator(draft)
        refusal = _refusal(draft, checked, patient)
        if refusal is not None:
            issues.append(refusal)
            continue
        issues.extend(checked.issues)  # the repairs it was read with
        resource = checked.resource
        for trigger in service.draft_orders or []:
            if resource.get("resourceType") != trigger.resource_type:
                continue
            code = [resource.get("code"), resource.get("medicationCodeableConcept")]
            if _in(codes, code, trigger.code_valueset) and _in(
                codes, list(resource.get("reasonCode") or []), trigger.reason_valueset
            ):
                matched.append(MatchedDraft(trigger, reference_of(resource), _label(resource)))
                break
    return matched, issues


def order_notes(matched: list[MatchedDraft]) -> tuple[str, ...]:
    """Markdown for the card: each matched draft order and what to know about it."""
    return tuple(f"**About the order {m.label}:** {m.trigger.advice.strip()}" for m in matched)
