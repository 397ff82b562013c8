"""POST /cds-services/{service_id}/feedback: what the clinician did with a card (CDS Hooks 2.0 Feedback)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request
from pydantic import BaseModel
from sqlalchemy.exc import DataError, SQLAlchemyError

from service.api.deps import RuntimeDep
from service.api.errors import ErrorBody
from service.api.security import authenticate
from service.api.strictjson import StrictJsonRoute
from service.cdshooks.models import FeedbackRequest
from service.errors import BadRequest, NotFound, ServiceUnavailable
from service.runtime import Runtime
from service.store.db import UnknownCards, UnknownSuggestions

router = APIRouter(tags=["CDS Hooks"], route_class=StrictJsonRoute)


class FeedbackStored(BaseModel):
    stored: int


async def _record_when_known(runtime: Runtime, service_id: str, items: list[dict[str, Any]]) -> int:
    """Store the feedback; a card answered a moment ago may not be in the decision log yet (its row is written
    after the answer, perhaps by another worker), so unknown cards are retried for a short while before 404."""
    assert runtime.store is not None
    deadline = time.monotonic() + runtime.settings.feedback_wait_seconds
    pause = 0.02
    while True:
        try:
            return await asyncio.to_thread(runtime.store.record_feedback, service_id, items, runtime.clock())
        except UnknownCards as error:
            # Only a card id this service could have made (a UUID) is worth waiting for, and the wait backs off:
            # feedback for made-up cards costs one lookup, never a worker's time.
            if time.monotonic() + pause > deadline or not all(_is_uuid(card) for card in error.uuids):
                raise
            await asyncio.sleep(pause)
            pause *= 2


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


@router.post(
    "/cds-services/{service_id}/feedback",
    response_model=FeedbackStored,
    responses={
        400: {
            "model": ErrorBody,
            "description": "Malformed feedback, feedback no database can store (NUL, lone surrogate, over-long "
            "value), or a suggestion the card did not offer",
        },
        401: {"model": ErrorBody, "description": "Missing or invalid JWT"},
        404: {
            "model": ErrorBody,
            "description": "No such service, or a card this service did not return (after waiting briefly for a "
            "decision row still being written)",
        },
        413: {"model": ErrorBody, "description": "Request body over the size limit"},
        503: {
            "model": ErrorBody,
            "description": "Storage unavailable, or the card's decision still waiting to be stored: nothing was "
            "stored, send it again",
        },
    },
    summary="Send feedback on cards",
)
async def send_feedback(
    service_id: Annotated[str, Path(examples=["mscc-patient-view"])],
    feedback: Annotated[FeedbackRequest, Body()],
    http_request: Request,
    runtime: RuntimeDep,
) -> FeedbackStored:
    """Stores every item or none. 200 means stored (it survives restarts); 503 means nothing was stored."""
    if runtime.ruleset.service(service_id) is None:
        raise NotFound(f"no CDS service {service_id!r}")
    await authenticate(runtime, http_request, service_id, feedback=True)
    assert runtime.store is not None
    items = [item.model_dump(mode="json", exclude_none=True) for item in feedback.feedback]
    try:
        stored = await _record_when_known(runtime, service_id, items)
    except UnknownCards as error:
        waiting = await asyncio.to_thread(runtime.spool.pending) if runtime.spool is not None else 0
        if waiting:
            raise ServiceUnavailable(
                "feedback names cards whose decisions are not stored yet (storage is catching up); "
                "nothing was stored, send it again",
                error.uuids,
            ) from None
        raise NotFound("feedback names cards this service did not return", error.uuids) from None
    except UnknownSuggestions as error:
        raise BadRequest("feedback accepts suggestions the card did not offer", error.ids) from None
    except DataError:  # the database refuses these values, now and always: resending cannot help
        raise BadRequest("feedback cannot be stored as sent; nothing was stored") from None
    except SQLAlchemyError:
        raise ServiceUnavailable("feedback could not be stored; nothing was stored, send it again") from None
    if runtime.metrics is not None:
        for item in items:
            runtime.metrics.feedback.labels(item["outcome"]).inc()
    return FeedbackStored(stored=stored)
