"""POST /cds-services/{service_id}: a hook call."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path
from fastapi.responses import JSONResponse

from service.api.deps import RuntimeDep
from service.api.errors import ErrorBody
from service.api.examples import hook_request_examples
from service.cdshooks.call import answer_call
from service.cdshooks.models import CdsResponse, HookRequest
from service.errors import NotFound

router = APIRouter(tags=["CDS Hooks"])
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Malformed JSON, or a request that breaks CDS Hooks 2.0"},
    401: {"model": ErrorBody, "description": "Missing or invalid JWT"},
    404: {"model": ErrorBody, "description": "No such service"},
    412: {"model": ErrorBody, "description": "Required FHIR data was neither prefetched nor fetchable"},
    413: {"model": ErrorBody, "description": "Request body over the size limit"},
}
ServiceId = Annotated[str, Path(description="a service id from discovery", examples=["mscc-patient-view"])]


@router.post(
    "/cds-services/{service_id}",
    response_model=CdsResponse,
    responses=ERRORS,
    summary="Call a CDS Service",
)
async def call_service(
    service_id: ServiceId,
    request: Annotated[HookRequest, Body(openapi_examples=hook_request_examples())],
    runtime: RuntimeDep,
) -> JSONResponse:
    """Evaluate the rules for the patient in context and answer with at most one card.

    The card recommends a whole-spine MRI and a referral, names the rule version and lists the patient data
    behind it. Missing prefetch keys are fetched from `fhirServer` when it is allowed; otherwise 412.
    """
    service = runtime.ruleset.service(service_id)
    if service is None:
        raise NotFound(f"no CDS service {service_id!r}; see GET /cds-services")
    fetch = runtime.extras.get("fetch")
    outcome = await answer_call(runtime, service, request, fetch)
    return JSONResponse(outcome.response.dump())
