"""The decision log: one typed row per hook call, stored before the answer leaves, never failing it.

A write that fails is retried; when every retry fails the row goes to the on-disk spool (`store/spool.py`) and is
written when storage returns. Only when the disk refuses it too is a row lost: that is logged with the decision id
(and no patient data) and counted in `mscc_decision_log_failures`, never silent.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from service.cdshooks.models import Card
from service.engine.evaluation import Evaluation

if TYPE_CHECKING:
    from service.metrics import Metrics
    from service.store.db import Store
    from service.store.spool import DecisionSpool

log = logging.getLogger("service.decisionlog")


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
        site: str | None = None,
    ) -> DecisionRecord:
        lead = evaluation.lead
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
            site=site,
            shadow_evaluated=[d.ref for d in evaluation.shadow] if evaluation.shadow else None,
        )

    def as_row(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> DecisionRecord:
        """A row read back (from the spool); unknown keys are refused (KeyError), missing ones too (TypeError)."""
        known = {f.name for f in fields(cls)}
        unknown = set(row) - known
        if unknown:
            raise KeyError(f"not decision-row fields: {sorted(unknown)}")
        return cls(**row)


class DecisionLog:
    """Writes decision rows on the answer path: quick retries, then the spool; an outage costs ~60 ms, not seconds."""

    def __init__(self, store: Store, spool: DecisionSpool, metrics: Metrics) -> None:
        self.store = store
        self.spool = spool
        self.metrics = metrics

    async def write(self, record: DecisionRecord) -> None:
        try:
            await asyncio.to_thread(self.store.write_decision, record, 3, 0.02)
        except SQLAlchemyError as error:
            fields_ = {"decision_id": record.id, "service": record.service_id, "error": type(error).__name__}
            try:
                await asyncio.to_thread(self.spool.put, record)
            except OSError as disk:
                fields_["spool_error"] = type(disk).__name__
            else:
                self.metrics.decisions_spooled.inc()
                log.warning("decision log write failed; row spooled to disk", extra={"fields": fields_})
                return
            self.metrics.log_failures.inc()
            log.error("decision log row lost: storage and spool both failed", extra={"fields": fields_})
