"""POST /cds-services/{service_id}/feedback: what the clinician did with a card (CDS Hooks 2.0 Feedback)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel
from sqlalchemy.exc import DataError, SQLAlchemyError

from service.api.deps import (
    CaughtUpStoreDep,
    ClockDep,
    FeedbackCallerDep,
    MetricsDep,
    ServiceDep,
    SettingsDep,
    SpoolDep,
)
from service.api.errors import cds_error_responses
from service.api.strictjson import StrictJsonRoute
from service.cdshooks.models import FeedbackRequest
from service.errors import BadRequest, ServiceUnavailable, UnknownCards
from service.runtime import Clock
from service.store.db import Store

router = APIRouter(tags=["CDS Hooks"], route_class=StrictJsonRoute)


class FeedbackStored(BaseModel):
    stored: int


async def _record_when_known(
    store: Store, clock: Clock, wait_seconds: float, service_id: str, items: list[dict[str, Any]]
) -> int:
    """Store the feedback; a card answered a moment ago may not be in the decision log yet (its row may still be
    on its way from another worker, or in the spool), so unknown cards are retried for a short while before 404."""
    deadline = time.monotonic() + wait_seconds
    pause = 0.02
    while True:
        try:
            return await asyncio.to_thread(store.record_feedback, service_id, items, clock())
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
    responses=cds_error_responses(
        {
            400: "Malformed feedback, feedback no database can store (NUL, lone surrogate, over-long value), or a "
            "suggestion the card did not offer",
            401: "Missing or invalid JWT (bare: the check that failed is in the log and the metrics)",
            404: "No such service, or a card this service did not return (after waiting briefly for a decision row "
            "still being written)",
            413: "Request body over the size limit",
            415: "The body is not JSON (Content-Type)",
            503: "Storage unavailable, or the card's decision still waiting to be stored: nothing was stored, send it "
            "again",
        }
    ),
    summary="Send feedback on cards",
)
async def send_feedback(
    service: ServiceDep,
    _caller: FeedbackCallerDep,
    feedback: Annotated[FeedbackRequest, Body()],
    store: CaughtUpStoreDep,
    spool: SpoolDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    clock: ClockDep,
) -> FeedbackStored:
    """Stores every item or none. 200 means stored (it survives restarts); 503 means nothing was stored."""
    items = [item.model_dump(mode="json", exclude_none=True) for item in feedback.feedback]
    try:
        stored = await _record_when_known(store, clock, settings.feedback_wait_seconds, service.id, items)
    except UnknownCards as error:
        shared = settings.spool_shared_root
        waiting = await asyncio.to_thread(lambda: spool.pending() or (shared and spool.journals_waiting(shared)))
        if spool.at_risk or waiting:
            raise ServiceUnavailable(
                "feedback names cards whose decisions are not stored yet (storage is catching up); "
                "nothing was stored, send it again",
                error.uuids,
            ) from None
        raise
    except DataError:  # the database refuses these values, now and always: resending cannot help
        raise BadRequest("feedback cannot be stored as sent; nothing was stored") from None
    except SQLAlchemyError:
        raise ServiceUnavailable("feedback could not be stored; nothing was stored, send it again") from None
    for item in items:
        metrics.feedback.labels(item["outcome"]).inc()
    return FeedbackStored(stored=stored)
