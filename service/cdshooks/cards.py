"""Render fired decisions as one CDS Hooks card a clinician can act on and audit.

When several rules fire, the most urgent wins the card (and its suggestions), and the others' evidence joins
its detail: a response never offers two MRIs. Every card names the rule versions and the resources behind it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from service.cdshooks.deadline import Late
from service.cdshooks.deadlinecard import detail_lines, headline
from service.cdshooks.display import UTC_ZONE, clinical_date, finding, shown_value
from service.cdshooks.models import Action, Card, Coding, Link, Source, Suggestion
from service.cdshooks.ordercard import delete_actions, order_headline, swap_label, swapped_drafts
from service.cdshooks.orders import MatchedDraft
from service.cdshooks.overrides import offered
from service.engine.criteria import CriterionResult
from service.engine.decide import Decision
from service.engine.evaluation import Evaluation
from service.engine.ruleset import RuleSet
from service.engine.unreadable import UnreadableSign
from service.fhir.dates import parse_fhir_time
from service.fhir.record import Fact

EXTENSION_KEY = "org.mscc-cds.decision"
_REASON_TYPES = frozenset({"Condition", "Observation", "DiagnosticReport"})


@dataclass(frozen=True)
class CardContext:
    """What a card needs to know about the call beyond the evaluation: who is asking, where, and how to make ids."""

    new_uuid: Callable[[], str]
    user_id: str | None = None
    encounter_id: str | None = None
    drafts: tuple[MatchedDraft, ...] = ()  # order hooks: the draft orders that made the service answer
    late: Late | None = None  # deadline hooks: the MRI that misses the rule's deadline
    zone: ZoneInfo = UTC_ZONE  # the hospital's time zone, for the dates a clinician reads (MSCC_TIMEZONE)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").strip() or "-"


def _fact_line(fact: Fact, zone: ZoneInfo) -> str:
    name = finding(fact, with_status=False)
    return f"| {_cell(name)} | {_cell(shown_value(fact))} | {clinical_date(fact.time, zone)} |"


def _held_leaves(decision: Decision) -> list[CriterionResult]:
    """The data criteria under `when` that held, so the card can say why in the rule's own words."""
    rule = decision.rule
    out: list[CriterionResult] = []

    def walk(name: str) -> None:
        result = decision.criteria[name]
        if not result.held or result in out:
            return
        if result.kind in ("all_of", "any_of"):
            for child in rule.criteria[name].spec.children:
                walk(child)
        else:
            out.append(result)

    walk(rule.spec.when)
    return out


def _evidence_table(facts: list[Fact], zone: ZoneInfo) -> list[str]:
    """One row per finding: a finding read from its code and from its words is one finding to the clinician."""
    first = {(f.reference, f.part): f for f in facts[::-1]}  # the first reading of each finding wins
    rows = [_fact_line(f, zone) for f in facts if first[(f.reference, f.part)] is f]
    return ["| Finding | Value | Date |", "| --- | --- | --- |", *rows]


def _unreadable_table(signs: tuple[UnreadableSign, ...], zone: ZoneInfo) -> list[str]:
    if not signs:
        return []
    rows = [
        f"| {_cell(s.label)} | {clinical_date(parse_fhir_time(s.date_text), zone)} | {_cell(s.problem)} |"
        for s in signs
    ]
    return [
        "",
        "**Could not be read** (check these entries in the record: they may be warning signs):",
        "",
        "| Finding | Date | Problem |",
        "| --- | --- | --- |",
        *rows,
    ]


def _detail(evaluation: Evaluation, lead: Decision, ruleset: RuleSet, ctx: CardContext) -> str:
    spec = lead.rule.spec
    others = evaluation.fired[1:]
    lines = detail_lines(ctx.late, ctx.zone) if ctx.late else []
    lines += [spec.card.detail.strip(), ""]
    for draft in ctx.drafts:
        lines += [f"**About the order {draft.label}:** {draft.advice}", ""]
    lines += [f"**Why:** {spec.title}."]
    lines += [f"- {r.description}" for r in _held_leaves(lead)]
    lines += ["", "**Patient data behind this card:**", "", *_evidence_table(lead.evidence, ctx.zone)]
    for other in others:
        lines += ["", f"**Also met:** {other.rule.spec.title}.", ""]
        lines += _evidence_table(other.evidence, ctx.zone)
    for order in [] if ctx.late else lead.dropped_suggestions:
        unless = next(s.unless for s in spec.card.suggestions if s.order == order)
        reason = lead.criteria[unless] if unless else None
        if reason is not None:
            found = ", ".join(f"{finding(f)}, {clinical_date(f.time, ctx.zone)}" for f in reason.evidence)
            why = reason.description[:1].lower() + reason.description[1:]
            lines += ["", f"No {ruleset.config.orders[order].description} is offered: {why} ({found})."]
    lines += _unreadable_table(evaluation.unreadable, ctx.zone)
    # The rule version is in the source line, the revision and the evaluation time in the extension: the
    # clinician's text holds only what a clinician acts on.
    return "\n".join(lines)


def _service_request(
    template: dict[str, Any], priority: str, lead: Decision, evaluation: Evaluation, ctx: CardContext
) -> dict[str, Any]:
    resource: dict[str, Any] = orjson.loads(orjson.dumps(template))  # a deep copy, faster than copy.deepcopy
    resource.setdefault("status", "draft")
    resource.setdefault("intent", "order")
    resource["priority"] = priority
    resource["subject"] = {"reference": f"Patient/{evaluation.record.patient_id}"}
    resource["authoredOn"] = evaluation.now.isoformat(timespec="seconds")
    if ctx.encounter_id:
        resource["encounter"] = {"reference": f"Encounter/{ctx.encounter_id}"}
    if ctx.user_id and ctx.user_id.split("/")[0] in ("Practitioner", "PractitionerRole"):
        resource["requester"] = {"reference": ctx.user_id}
    reasons = [
        {"reference": f.reference, "display": f.label} for f in evaluation.evidence if f.resource_type in _REASON_TYPES
    ]
    if reasons:
        resource["reasonReference"] = reasons
    resource["note"] = [{"text": f"Suggested by CDS rule {lead.ref}, rule set revision {evaluation.revision}."}]
    return resource


def _unreadable_card(evaluation: Evaluation, ruleset: RuleSet, ctx: CardContext) -> Card:
    """No rule fired, yet a possible warning sign could not be read: the check is incomplete, and the card says so."""
    config = ruleset.config
    notice = config.unreadable_card
    lines = [notice.detail.strip(), *_unreadable_table(evaluation.unreadable, ctx.zone)]
    return Card(
        uuid=ctx.new_uuid(),
        summary=notice.summary,
        indicator=notice.indicator,
        detail="\n".join(lines),
        source=Source(
            label=notice.source.label,
            url=str(notice.source.url),
            topic=Coding(system=config.topic.system, code=config.topic.code, display=config.topic.display),
        ),
        extension={
            EXTENSION_KEY: {
                "rulesetRevision": evaluation.revision,
                "evaluatedAt": evaluation.now.isoformat(timespec="seconds"),
                "unreadable": _unreadable_refs(evaluation.unreadable),
            }
        },
    )


def _summary(lead: Decision, ctx: CardContext) -> str:
    if ctx.late is not None:
        return headline(ctx.late, ctx.zone)
    return order_headline(lead, ctx.drafts) if ctx.drafts else lead.rule.spec.card.summary


def _links(links: list[Any], source_url: str) -> list[Link] | None:
    """The rule's links, but not the guideline the source line already cites: a card cites it once."""
    kept = [Link(label=link.label, url=str(link.url), type="absolute") for link in links if str(link.url) != source_url]
    return kept or None


def _unreadable_refs(signs: tuple[UnreadableSign, ...]) -> list[dict[str, str]]:
    return [{"reference": s.reference, "problem": s.problem} for s in signs]


def render_card(evaluation: Evaluation, ctx: CardContext) -> Card | None:
    """One card for the fired decisions (the lead's suggestions, everyone's evidence); a notice card when nothing
    fired but a possible warning sign could not be read; None when nothing fired and everything was read. Its
    orders and texts come from the rule set the evaluation was made with."""
    ruleset = evaluation.ruleset
    lead = evaluation.lead
    if lead is None:
        return _unreadable_card(evaluation, ruleset, ctx) if evaluation.unreadable else None
    template = lead.rule.spec.card
    suggestions = []
    for s in template.suggestions:
        if s.order in lead.dropped_suggestions and ctx.late is None:  # late: the MRI is offered again, at urgency
            continue
        order = ruleset.config.orders[s.order]
        swapped = swapped_drafts(s.order, ctx.drafts)
        create = Action(
            type="create",
            description=order.description,
            resource=_service_request(order.resource, s.priority, lead, evaluation, ctx),
        )
        suggestions.append(
            Suggestion(
                label=swap_label(s.label, swapped),
                uuid=ctx.new_uuid(),
                isRecommended=s.recommended,
                actions=[*delete_actions(swapped), create],
            )
        )
    config = ruleset.config
    return Card(
        uuid=ctx.new_uuid(),
        summary=_summary(lead, ctx),
        indicator=template.indicator,
        detail=_detail(evaluation, lead, ruleset, ctx),
        source=Source(
            label=f"{lead.rule.spec.source.label} · rule {lead.rule.id} {lead.rule.version}",
            url=str(lead.rule.spec.source.url),
            topic=Coding(system=config.topic.system, code=config.topic.code, display=config.topic.display),
        ),
        suggestions=suggestions or None,
        selectionBehavior="any" if suggestions else None,
        overrideReasons=offered(config, template.override_reasons) or None,
        links=_links(template.links, str(lead.rule.spec.source.url)),
        extension={
            EXTENSION_KEY: {
                "rules": [d.ref for d in evaluation.fired],
                "rulesetRevision": evaluation.revision,
                "evaluatedAt": evaluation.now.isoformat(timespec="seconds"),
                "evidence": [{"reference": f.reference, "date": f.date_text} for f in evaluation.evidence],
                **({"unreadable": _unreadable_refs(evaluation.unreadable)} if evaluation.unreadable else {}),
            }
        },
    )
