"""A hook call and what follows it: the answer (`cdshooks/call.py`), then its effects, kept out of the route.

The decision row is journaled on local disk before the answer leaves (the database gets it in the next batch): a
worker killed a moment later loses nothing it answered, and feedback sent the moment the card arrives finds its
decision (it writes this worker's journal first, or waits for another's). Every call, answered or refused, is
counted in /metrics; an answered one is logged with the patient as a salted hash, never in clear. For an answered
call both happen once the answer has been sent (`AnsweredCall.report`): the EHR waits for the journal, not for them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.cdshooks.auth import VerifiedCaller
from service.cdshooks.call import CallOptions, CallOutcome, answer_call
from service.cdshooks.fetch import FhirFetcher
from service.cdshooks.models import HookRequest
from service.engine.model import ServiceEntry
from service.errors import ServiceError
from service.logs import hash_patient_id, log_refusal
from service.metrics import Metrics
from service.rulesource import RuleSource
from service.store.decisionrow import DecisionRecord
from service.store.decisions import DecisionLog

log = logging.getLogger("service.hooks")


@dataclass(frozen=True, slots=True)
class AnsweredCall:
    outcome: CallOutcome
    report: Callable[[], Awaitable[None]]  # counts and logs the answered call: run it after the answer is sent


class HookCalls:
    def __init__(
        self,
        rules: RuleSource,
        options: CallOptions,
        *,
        clock: Callable[[], datetime],
        new_uuid: Callable[[], str],
        fetcher: FhirFetcher,
        decisions: DecisionLog,
        metrics: Metrics,
        patient_hash_salt: str,
    ) -> None:
        self.rules = rules
        self.options = options
        self.clock = clock
        self.new_uuid = new_uuid
        self.fetcher = fetcher
        self.decisions = decisions
        self.metrics = metrics
        self.salt = patient_hash_salt

    async def answer(self, service: ServiceEntry, request: HookRequest, caller: VerifiedCaller | None) -> AnsweredCall:
        """The call's outcome, its decision row journaled; `report` counts and logs it (refusals are counted and
        logged at once, and raised)."""
        started = time.perf_counter()
        issuer = caller.iss if caller else None
        ruleset = self.rules.current  # one rule set for the whole call, even if a reload swaps it meanwhile

        async def fetch(req: HookRequest, queries: dict[str, str]) -> dict[str, Any]:
            return await self.fetcher.fetch(req, queries, issuer)

        try:
            outcome = await answer_call(
                ruleset,
                service,
                request,
                options=self.options,
                clock=self.clock,
                new_uuid=self.new_uuid,
                fetch=fetch,
            )
        except ServiceError as error:
            self._count(service.id, error.status_code, time.perf_counter() - started)
            log_refusal(service.id, error.status_code, error.message)
            raise
        decision_id = self.new_uuid()
        patient = hash_patient_id(outcome.evaluation.record.patient_id, self.salt)
        card = outcome.response.cards[0] if outcome.response.cards else None
        record = DecisionRecord.of(
            outcome.evaluation,
            card,
            decision_id=decision_id,
            created_at=self.clock(),
            service_id=service.id,
            hook=request.hook,
            hook_instance=request.hookInstance,
            patient_hash=patient,
            issuer=issuer,
            fetched_keys=outcome.fetched_keys,
            timings_ms=outcome.timings_ms,
        )
        await self.decisions.write(record)
        seconds = time.perf_counter() - started  # the time to answer, whenever the report runs

        async def report() -> None:  # async: run as a background task without a thread hop
            self._count(service.id, 200, seconds)
            lead = record.lead_rule or "none"
            for answered in outcome.response.cards:
                self.metrics.cards.labels(lead, answered.indicator).inc()
            set_aside = self.metrics.count_set_aside(outcome.evaluation.record)
            not_evaluated = self.metrics.count_criterion_errors(outcome.evaluation.decisions)
            log.info(
                "hook answered",
                extra={
                    "fields": {
                        "decision_id": decision_id,
                        "service": service.id,
                        "patient": patient,
                        "cards": [c.indicator for c in outcome.response.cards],
                        "set_aside": set_aside,
                        "input_issues": len(outcome.issues),
                        "not_read": outcome.set_aside_inputs(),
                        **({"not_evaluated": not_evaluated} if not_evaluated else {}),
                        "ms": round(seconds * 1000, 1),
                    }
                },
            )

        return AnsweredCall(outcome, report)

    def _count(self, service_id: str, status: int, seconds: float) -> None:
        self.metrics.calls.labels(service_id, str(status)).inc()
        self.metrics.latency.labels(service_id).observe(seconds)
