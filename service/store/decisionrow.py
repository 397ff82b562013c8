"""One decision-log row: what decided one answer, typed (the journal, the database and the reports read it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from service.cdshooks.models import Card
from service.engine.evaluation import Evaluation


@dataclass(frozen=True)
class DecisionRecord:
    """What decided one answer: the rule versions, the evidence references and the card's ids, never card text
    or patient data (the patient is a salted hash)."""

    id: str
    created_at: datetime
    service_id: str
    hook: str
    hook_instance: str
    patient_hash: str
    issuer: str | None
    ruleset_revision: str
    rules_evaluated: list[str]
    rules_fired: list[str]
    lead_rule: str | None
    indicator: str | None
    card_uuid: str | None
    suggestions: list[dict[str, Any]]
    evidence: list[str]
    fetched_keys: list[str]
    shadow_fired: list[str] | None
    data_ms: float
    evaluate_ms: float
    site: str | None = None  # name@revision of the site codes that answered too (rows spooled before had none)
    shadow_evaluated: list[str] | None = None  # the drafts run in shadow on this call (fired or not)

    @classmethod
    def of(
        cls,
        evaluation: Evaluation,
        card: Card | None,
        *,
        decision_id: str,
        created_at: datetime,
        service_id: str,
        hook: str,
        hook_instance: str,
        patient_hash: str,
        issuer: str | None,
        fetched_keys: list[str],
        timings_ms: dict[str, float],
    ) -> DecisionRecord:
        """The row of one answer, naming the rule set (and site codes) the evaluation was made with."""
        lead = evaluation.lead
        site = evaluation.ruleset.site
        return cls(
            id=decision_id,
            created_at=created_at,
            service_id=service_id,
            hook=hook,
            hook_instance=hook_instance,
            patient_hash=patient_hash,
            issuer=issuer,
            ruleset_revision=evaluation.revision,
            rules_evaluated=[d.ref for d in evaluation.decisions],
            rules_fired=[d.ref for d in evaluation.fired],
            lead_rule=lead.ref if lead else None,
            indicator=card.indicator if card else None,
            card_uuid=card.uuid if card else None,
            suggestions=[{"uuid": s.uuid, "label": s.label} for s in (card.suggestions or []) if s.uuid]
            if card
            else [],
            evidence=[f.reference for f in evaluation.evidence] if card else [],
            fetched_keys=fetched_keys,
            shadow_fired=evaluation.shadow_fired if evaluation.shadow else None,
            data_ms=round(timings_ms.get("data_ms", 0.0), 3),
            evaluate_ms=round(timings_ms.get("evaluate_ms", 0.0), 3),
            site=site.ref if site is not None else None,
            shadow_evaluated=[d.ref for d in evaluation.shadow] if evaluation.shadow else None,
        )

    def as_row(self) -> dict[str, Any]:
        return asdict(self)
