"""The decision log: one row per hook call, stored before the answer leaves, never failing it.

A write that fails is retried; when every retry fails the row goes to the on-disk spool (`store/spool.py`) and is
written when storage returns. Only when the disk refuses it too is a row lost: that is logged with the decision id
(and no patient data) and counted in `mscc_decision_log_failures`, never silent.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from service.cdshooks.call import CallOutcome
from service.cdshooks.models import HookRequest
from service.engine.cards import EXTENSION_KEY
from service.logs import hash_patient_id
from service.runtime import Runtime

log = logging.getLogger("service.decisionlog")


def decision_row(
    runtime: Runtime, decision_id: str, service_id: str, request: HookRequest, outcome: CallOutcome, issuer: str | None
) -> dict[str, Any]:
    card = outcome.response.cards[0] if outcome.response.cards else None
    fired = [d.ref for d in outcome.decisions if d.fired]
    suggestions = (
        [{"uuid": s.uuid, "label": s.label} for s in (card.suggestions or []) if card is not None and s.uuid]
        if card
        else []
    )
    evidence = (
        [e["reference"] for e in (card.extension or {}).get(EXTENSION_KEY, {}).get("evidence", [])] if card else []
    )
    return {
        "id": decision_id,
        "created_at": runtime.clock(),
        "service_id": service_id,
        "hook": request.hook,
        "hook_instance": request.hookInstance,
        "patient_hash": hash_patient_id(outcome.record.patient_id, runtime.settings.patient_hash_salt),
        "issuer": issuer,
        "ruleset_revision": runtime.ruleset.revision,
        "rules_evaluated": [d.ref for d in outcome.decisions],
        "rules_fired": fired,
        "lead_rule": fired[0] if fired else None,
        "indicator": card.indicator if card else None,
        "card_uuid": card.uuid if card else None,
        "suggestions": suggestions,
        "evidence": evidence,
        "fetched_keys": outcome.fetched_keys,
        "shadow_fired": [d.ref for d in outcome.shadow if d.fired] if outcome.shadow else None,
        "data_ms": round(outcome.timings_ms.get("data_ms", 0.0), 3),
        "evaluate_ms": round(outcome.timings_ms.get("evaluate_ms", 0.0), 3),
    }


async def write_decision(runtime: Runtime, row: dict[str, Any]) -> None:
    store = runtime.store
    if store is None:
        return
    try:
        # On the answer path: quick retries (a locked file), then the spool; an outage costs ~60 ms, not seconds.
        await asyncio.to_thread(store.write_decision, row, 3, 0.02)
    except SQLAlchemyError as error:
        fields = {"decision_id": row["id"], "service": row["service_id"], "error": type(error).__name__}
        if runtime.spool is not None:
            try:
                await asyncio.to_thread(runtime.spool.put, row)
            except OSError as disk:
                fields["spool_error"] = type(disk).__name__
            else:
                if runtime.metrics is not None:
                    runtime.metrics.decisions_spooled.inc()
                log.warning("decision log write failed; row spooled to disk", extra={"fields": fields})
                return
        if runtime.metrics is not None:
            runtime.metrics.log_failures.inc()
        log.error("decision log row lost: storage and spool both failed", extra={"fields": fields})
