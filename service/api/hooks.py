"""POST /cds-services/{service_id}: a hook call."""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request
from fastapi.responses import JSONResponse

from service.api.deps import RuntimeDep
from service.api.errors import ErrorBody
from service.api.examples import hook_request_examples
from service.api.security import authenticate
from service.api.strictjson import StrictJsonRoute
from service.cdshooks.call import CallOutcome, answer_call
from service.cdshooks.models import CdsResponse, HookRequest
from service.decisionlog import decision_row, write_decision
from service.errors import NotFound, ServiceError
from service.logs import hash_patient_id
from service.runtime import Runtime

router = APIRouter(tags=["CDS Hooks"], route_class=StrictJsonRoute)
log = logging.getLogger("service.hooks")
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Malformed JSON, or a request that breaks CDS Hooks 2.0"},
    401: {"model": ErrorBody, "description": "Missing or invalid JWT"},
    404: {"model": ErrorBody, "description": "No such service"},
    412: {"model": ErrorBody, "description": "Required FHIR data was neither prefetched nor fetchable"},
    413: {"model": ErrorBody, "description": "Request body over the size limit"},
}
ServiceId = Annotated[str, Path(description="a service id from discovery", examples=["mscc-patient-view"])]


def _observe(
    runtime: Runtime, service_id: str, status: int, started: float, outcome: CallOutcome | None
) -> dict[str, int]:
    """Count the call in /metrics; return the set-aside counts by category for the log line."""
    metrics = runtime.metrics
    if metrics is None:
        return {}
    metrics.calls.labels(service_id, str(status)).inc()
    metrics.latency.labels(service_id).observe(time.perf_counter() - started)
    if outcome is not None:
        for card in outcome.response.cards:
            lead = next((d.ref for d in outcome.decisions if d.fired), "none")
            metrics.cards.labels(lead, card.indicator).inc()
        return metrics.count_set_aside(outcome.record)
    return {}


@router.post(
    "/cds-services/{service_id}",
    response_model=CdsResponse,
    responses=ERRORS,
    summary="Call a CDS Service",
)
async def call_service(
    service_id: ServiceId,
    request: Annotated[HookRequest, Body(openapi_examples=hook_request_examples())],
    http_request: Request,
    runtime: RuntimeDep,
) -> JSONResponse:
    """Evaluate the rules for the patient in context and answer with at most one card.

    The card recommends a whole-spine MRI and a referral, names the rule version and lists the patient data
    behind it. Missing prefetch keys are fetched from `fhirServer` when it is allowed; otherwise 412.
    """
    started = time.perf_counter()
    try:
        service = runtime.ruleset.service(service_id)
        if service is None:
            raise NotFound(f"no CDS service {service_id!r}; see GET /cds-services")
        caller = await authenticate(runtime, http_request, service_id)
        issuer = caller.iss if caller else None
        fetcher = runtime.fetcher

        async def fetch(req: HookRequest, queries: dict[str, str]) -> dict[str, Any]:
            assert fetcher is not None
            return await fetcher.fetch(req, queries, issuer)

        outcome = await answer_call(runtime, service, request, fetch if fetcher else None)
    except ServiceError as error:
        _observe(runtime, service_id, error.status_code, started, None)
        raise
    decision_id = runtime.new_uuid()
    # Stored (or spooled to disk) before the answer leaves: a worker killed a moment later loses nothing it
    # answered, and feedback sent the moment the card arrives finds its decision.
    await write_decision(runtime, decision_row(runtime, decision_id, service_id, request, outcome, issuer))
    set_aside = _observe(runtime, service_id, 200, started, outcome)
    log.info(
        "hook answered",
        extra={
            "fields": {
                "decision_id": decision_id,
                "service": service_id,
                "patient": hash_patient_id(outcome.record.patient_id, runtime.settings.patient_hash_salt),
                "cards": [c.indicator for c in outcome.response.cards],
                "set_aside": set_aside,
                "input_issues": len(outcome.record.issues),
                "ms": round((time.perf_counter() - started) * 1000, 1),
            }
        },
    )
    return JSONResponse(outcome.response.dump())
