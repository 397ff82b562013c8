"""POST /cds-services/{service_id}/feedback: what the clinician did with a card (CDS Hooks 2.0 Feedback)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request
from pydantic import BaseModel
from sqlalchemy.exc import DataError, SQLAlchemyError

from service.api.deps import RuntimeDep
from service.api.errors import ErrorBody
from service.api.security import authenticate
from service.cdshooks.models import FeedbackRequest
from service.errors import BadRequest, NotFound, ServiceError
from service.store.db import UnknownCards, UnknownSuggestions

router = APIRouter(tags=["CDS Hooks"])

# The longest value each stored field takes (store/tables.py): longer feedback can never be stored, on any database.
_LIMITS = {"card": 64, "outcomeTimestamp": 40, "system": 300, "code": 100, "display": 300}


def _unstorable(value: Any, path: str = "feedback") -> list[str]:
    """Why this feedback can never be stored (so "send it again" would be a lie): never the values themselves."""
    problems: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            problems += _unstorable(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            problems += _unstorable(item, f"{path}[{i}]")
    elif isinstance(value, str):
        if "\x00" in value:
            problems.append(f"{path}: contains a NUL character")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            problems.append(f"{path}: contains a lone surrogate (not valid Unicode text)")
        limit = _LIMITS.get(path.rsplit(".", 1)[-1])
        if limit is not None and len(value) > limit:
            problems.append(f"{path}: longer than {limit} characters")
    return problems


class ServiceUnavailable(ServiceError):
    status_code = 503
    code = "unavailable"


class FeedbackStored(BaseModel):
    stored: int


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
        404: {"model": ErrorBody, "description": "No such service, or a card this service did not return"},
        413: {"model": ErrorBody, "description": "Request body over the size limit"},
        503: {"model": ErrorBody, "description": "Storage unavailable: nothing was stored, send it again"},
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
    problems = _unstorable(items)
    if problems:
        raise BadRequest("feedback cannot be stored as sent; nothing was stored", problems)
    try:
        stored = await asyncio.to_thread(runtime.store.record_feedback, service_id, items, runtime.clock())
    except UnknownCards as error:
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
