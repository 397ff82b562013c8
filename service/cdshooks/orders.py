"""Order hooks: which draft orders make the service answer (non-MRI spine imaging, analgesia for back pain, an
MRI already drafted), and what the card should say about each.

An order hook with no matching draft stays silent, even when a rule fires: patient-view already showed that card,
and repeating it on every unrelated order is alert fatigue.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from service.cdshooks.display import system_name
from service.engine.model import DraftOrderTrigger, OrderKind, ServiceEntry
from service.engine.valuesets import CodeIndex
from service.fhir.codes import RXNORM, coding_key
from service.fhir.record import coding_keys, names_patient
from service.fhir.validate import ONE_ELEMENT_ARRAY, InputIssue, Validated, reference_of, validate

_CONCEPTS = ("code", "medicationCodeableConcept")


@dataclass(frozen=True)
class MatchedDraft:
    trigger: DraftOrderTrigger
    reference: str
    label: str
    kind: OrderKind | None = None

    @property
    def advice(self) -> str:
        return (self.kind.advice if self.kind else self.trigger.advice).strip()

    @property
    def order_name(self) -> str:
        """What the headline calls the order: its kind ("Spine X-ray"), else the trigger's word for it."""
        return self.kind.name if self.kind else self.trigger.order_name


@dataclass(frozen=True)
class _Match:
    held: bool
    by_name: InputIssue | None = None  # set when only the RxNorm name (an ingredient in it) made the order a member


def _label(resource: dict[str, Any]) -> str:
    concept = resource.get("code") or resource.get("medicationCodeableConcept") or {}
    if concept.get("text"):
        return str(concept["text"])
    displays = [c.get("display") for c in concept.get("coding") or [] if c.get("display")]
    return str(displays[0]) if displays else "this order"


def _names(resource: dict[str, Any]) -> str:
    """Every name the order carries (its text and its codings' displays), for telling kinds of order apart."""
    texts: list[str] = []
    for field in _CONCEPTS:
        concept = resource.get(field) or {}
        texts += [str(concept["text"])] if concept.get("text") else []
        texts += [str(c["display"]) for c in concept.get("coding") or [] if c.get("display")]
    return " | ".join(texts)


@lru_cache(maxsize=256)
def _kind_pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(w.strip()).replace(r"\ ", r"\s+") for w in words)
    return re.compile(rf"(?<![\w-])(?:{alternatives})(?![\w-])", re.IGNORECASE)


def kind_of(trigger: DraftOrderTrigger, names: str) -> OrderKind | None:
    return next((k for k in trigger.kinds if _kind_pattern(tuple(k.words)).search(names)), None)


def _in(codes: CodeIndex, resource: dict[str, Any], valueset: str | None) -> _Match:
    """Whether the order's code is in the value set: by its code, else (medication value sets that name RxNorm
    ingredients) by the ingredient in its RxNorm name, which the answer then names so the code can be added."""
    if valueset is None:
        return _Match(True)
    concepts = [resource.get(field) for field in _CONCEPTS]
    if any(valueset in codes.lookup(key) for concept in concepts for key in coding_keys(concept)):
        return _Match(True)
    for field in _CONCEPTS:
        for i, coding in enumerate((resource.get(field) or {}).get("coding") or []):
            key = coding_key(coding.get("system"), coding.get("code"))
            if key is None or key[0] != RXNORM or not isinstance(coding.get("display"), str):
                continue
            ingredient = codes.by_rxnorm_name(coding["display"]).get(valueset)
            if ingredient is not None:
                message = (
                    f"recognised as {valueset} by its RxNorm name (ingredient {ingredient}); RxNorm {key[1]} is not "
                    "listed in the value set: add it there or in the site folder"
                )
                return _Match(True, InputIssue(reference_of(resource), f"{field}.coding[{i}]", message, "counted"))
    return _Match(False)


def _reasons_in(codes: CodeIndex, resource: dict[str, Any], valueset: str | None) -> bool:
    if valueset is None:
        return True
    return any(valueset in codes.lookup(key) for c in resource.get("reasonCode") or [] for key in coding_keys(c))


def _unknown_code(codes: CodeIndex, resource: dict[str, Any]) -> InputIssue | None:
    """An order no trigger took whose code no value set knows: it was not checked, and the answer says so, so that a
    spine image or an analgesic under a local or new code is noticed and added (a site folder) rather than missed."""
    for field in _CONCEPTS:
        if resource.get(field) is None:
            continue
        keys = coding_keys(resource.get(field))
        if any(codes.lookup(key) for key in keys):
            return None
        named = ", ".join(f"{system_name(s)} {c}" for s, c in keys) or "no coded value"
        message = (
            f"no value set of the service holds the order's code ({named}): it was not checked as spine imaging or "
            "analgesia; if it is one, add its code in the site folder"
        )
        return InputIssue(reference_of(resource), field, message, "set aside")
    return None


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
            code = _in(codes, resource, trigger.code_valueset)
            if code.held and _reasons_in(codes, resource, trigger.reason_valueset):
                kind = kind_of(trigger, _names(resource))
                matched.append(MatchedDraft(trigger, reference_of(resource), _label(resource), kind))
                issues.extend([code.by_name] if code.by_name else [])
                break
        else:
            unknown = _unknown_code(codes, resource)
            issues.extend([unknown] if unknown else [])
    return matched, issues
