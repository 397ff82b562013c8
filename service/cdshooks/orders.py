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
from service.fhir.validate import Validated, reference_of, validate


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
    return str(displays[0]) if displays else reference_of(resource)


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


def match_drafts(
    service: ServiceEntry,
    codes: CodeIndex,
    drafts: list[dict[str, Any]],
    patient_id: str,
    validator: Callable[[dict[str, Any]], Validated] = validate,
) -> list[MatchedDraft]:
    matched = []
    patient = frozenset({f"Patient/{patient_id}"})
    for draft in drafts:
        if validator(draft).issues or not names_patient(draft, patient):
            continue  # an invalid draft, or one for another patient, is never acted on
        for trigger in service.draft_orders or []:
            if draft.get("resourceType") != trigger.resource_type:
                continue
            code = [draft.get("code"), draft.get("medicationCodeableConcept")]
            if _in(codes, code, trigger.code_valueset) and _in(
                codes, list(draft.get("reasonCode") or []), trigger.reason_valueset
            ):
                matched.append(MatchedDraft(trigger, reference_of(draft), _label(draft)))
                break
    return matched


def order_notes(matched: list[MatchedDraft]) -> tuple[str, ...]:
    """Markdown for the card: each matched draft order and what to know about it."""
    return tuple(f"**About the order `{m.reference}` ({m.label}):** {m.trigger.advice.strip()}" for m in matched)
