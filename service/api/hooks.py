"""POST /cds-services/{service_id}: a hook call."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Response
from starlette.background import BackgroundTask

from service.api.deps import HookCallDep
from service.api.errors import cds_error_responses
from service.api.examples import hook_request_examples
from service.api.hookroute import HookCallRoute
from service.cdshooks.models import CdsResponse, HookRequest

router = APIRouter(tags=["CDS Hooks"], route_class=HookCallRoute)
ERRORS = cds_error_responses(
    {
        400: "Malformed JSON, or a request that breaks CDS Hooks",
        401: "Missing or invalid JWT (bare: the check that failed is in the log and the metrics)",
        404: "No such service",
        412: "Required FHIR data was neither prefetched nor fetchable: names each prefetch key and its search",
        413: "Request body over the size limit",
        415: "The body is not JSON (Content-Type)",
    }
)


@router.post(
    "/cds-services/{service_id}",
    response_model=CdsResponse,
    responses=ERRORS,
    summary="Call a CDS Service",
)
async def call_service(
    target: HookCallDep, request: Annotated[HookRequest, Body(openapi_examples=hook_request_examples())]
) -> Response:
    """Evaluate the rules for the patient in context and answer with at most one card.

    The card recommends a whole-spine MRI and a referral, names the rule version and lists the patient data
    behind it. Missing prefetch keys are fetched from `fhirServer` when it is allowed; otherwise 412.
    """
    answer = await target.hooks.answer(target.service, request, target.caller)
    return Response(
        answer.outcome.response.dump_json(),
        media_type="application/json",
        background=BackgroundTask(answer.report),
    )
