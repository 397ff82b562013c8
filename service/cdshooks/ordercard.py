"""What an order hook's card says and offers beyond patient-view's: a headline about the order being signed, and
one suggestion that swaps a regional spine image for the whole-spine MRI (a `delete` of the draft and a `create`
of the MRI, which the client processes as one transaction: deletes first)."""

from __future__ import annotations

from collections.abc import Sequence

from service.cdshooks.models import Action
from service.cdshooks.orders import MatchedDraft
from service.engine.decide import Decision
from service.engine.model import SuggestionTemplate


def _offered(lead: Decision, order: str) -> SuggestionTemplate | None:
    """The lead rule's suggestion of this order, unless the rule dropped it (an MRI already done or booked)."""
    if order in lead.dropped_suggestions:
        return None
    return next((s for s in lead.rule.spec.card.suggestions if s.order == order), None)


def order_headline(lead: Decision, drafts: Sequence[MatchedDraft]) -> str:
    """The first matched draft's headline (`Spine X-ray ordered with MSCC warning signs: swap it for …`), or the
    rule's own summary when the draft has none or the order it promises is not offered."""
    for draft in drafts:
        trigger = draft.trigger
        if trigger.headline is None:
            continue
        offered = _offered(lead, trigger.offers) if trigger.offers else None
        if trigger.offers and offered is None:
            continue
        priority = offered.priority if offered else ""
        return trigger.headline.format(order=draft.order_name, priority=priority)
    return lead.rule.spec.card.summary


def swapped_drafts(order: str, drafts: Sequence[MatchedDraft]) -> list[MatchedDraft]:
    """The drafts the suggestion of `order` takes the place of (those of a trigger that replaces with it and that
    carry an id the client can delete)."""
    return [d for d in drafts if d.trigger.replace and d.trigger.offers == order and not d.reference.endswith("/?")]


def delete_actions(swapped: Sequence[MatchedDraft]) -> list[Action]:
    return [
        Action(type="delete", description=f"Cancel the draft order: {d.label}", resourceId=d.reference) for d in swapped
    ]


def _lower_first(name: str) -> str:
    """`spine X-ray` from `Spine X-ray`; `CT` stays `CT`."""
    return name[:1].lower() + name[1:] if name[1:2].islower() else name


def swap_label(label: str, swapped: Sequence[MatchedDraft]) -> str:
    """`Order MRI whole spine (stat, within 24 hours) instead of this spine X-ray`."""
    if not swapped:
        return label
    names = " and ".join(dict.fromkeys(_lower_first(d.order_name) for d in swapped))
    return f"{label} instead of this {names}"
