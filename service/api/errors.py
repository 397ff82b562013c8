"""Every error answered in one place: CDS Hooks endpoints get a small JSON error, FHIR endpoints an OperationOutcome.

Nothing reaches the client as a bare 500 with a stack trace; an unexpected error is logged (without
request data) and answered as a 500 JSON error that names a correlation id.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import InvalidFhir, ServiceError, field_problems
from service.logs import raised_at

log = logging.getLogger("service.errors")
FHIR_PATHS = ("/evaluate",)
FHIR_JSON = "application/fhir+json"


class ErrorBody(BaseModel):
    """The JSON body of every 4xx/5xx answer outside FHIR endpoints."""

    model_config = ConfigDict(extra="forbid")
    error: str = Field(examples=["bad_request"])
    message: str = Field(examples=["context is not valid for the patient-view hook"])
    details: list[str] | None = Field(default=None, min_length=1)


OPERATOR_REFUSED: dict[str, Any] = {  # the 401 of every endpoint behind require_operator (api/deps.py)
    "model": ErrorBody,
    "description": "MSCC_OPERATOR_TOKEN is set and the request does not carry it",
}


def error_response(status: int, code: str, message: str, details: list[str] | None = None) -> JSONResponse:
    body = ErrorBody(error=code, message=message, details=details or None)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status)


def operation_outcome(problems: list[tuple[str, str]], code: str = "invalid") -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": "error", "code": code, "diagnostics": message, "expression": [location]}
            for location, message in problems
        ],
    }


def _is_fhir_path(request: Request) -> bool:
    return request.url.path.startswith(FHIR_PATHS)


def _validation_problems(error: RequestValidationError) -> list[tuple[str, str]]:
    """FastAPI's errors name the body as `body`: the location starts inside it."""
    errors = []
    for e in error.errors():
        loc = tuple(e.get("loc", ()))
        errors.append({**e, "loc": loc[1:] if loc[:1] == ("body",) else loc})
    return field_problems(errors)


async def _on_validation(request: Request, error: RequestValidationError) -> JSONResponse:
    problems = _validation_problems(error)
    if _is_fhir_path(request):
        return JSONResponse(operation_outcome(problems), status_code=422, media_type=FHIR_JSON)
    message = (
        "the request is not valid CDS Hooks" if request.url.path.startswith("/cds-services") else "invalid request"
    )
    return error_response(400, "bad_request", message, [f"{a}: {b}" for a, b in problems])


async def _on_service_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ServiceError)
    if isinstance(error, InvalidFhir):
        return JSONResponse(operation_outcome(error.problems), status_code=422, media_type=FHIR_JSON)
    headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if error.status_code == 401 else None
    response = error_response(error.status_code, error.code, error.message, error.details)
    if headers:
        response.headers.update(headers)
    return response


_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 415: "unsupported_media_type"}


async def _on_http_error(request: Request, error: Exception) -> JSONResponse:
    """Framework errors (an undecodable body, an unknown route) in the same shapes as ours."""
    assert isinstance(error, HTTPException)
    message = str(error.detail)
    if _is_fhir_path(request) and error.status_code == 400:
        return JSONResponse(operation_outcome([("(body)", message)]), status_code=422, media_type=FHIR_JSON)
    response = error_response(error.status_code, _HTTP_CODES.get(error.status_code, "error"), message)
    response.headers.update(error.headers or {})
    return response


async def _on_unexpected(request: Request, error: Exception) -> JSONResponse:
    incident = str(uuid.uuid4())
    log.error(
        "unhandled error",
        extra={"fields": {"incident": incident, "method": request.method, "path": request.url.path}},
        exc_info=error,
    )
    return error_response(500, "internal_error", f"unexpected error; incident {incident} is logged")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _on_validation)  # type: ignore[arg-type]
    app.add_exception_handler(ServiceError, _on_service_error)
    app.add_exception_handler(HTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)


class CatchAll:
    """The last net: an unexpected error becomes a JSON 500 naming a logged incident, and is not raised further, so
    the server keeps the client's keep-alive connection open (Starlette's own handler re-raises, and the server
    then drops the connection and prints a traceback that can hold request data)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as error:
            incident = str(uuid.uuid4())
            log.error(
                "unhandled error",
                extra={
                    "fields": {
                        "incident": incident,
                        "path": scope.get("path"),
                        "error": type(error).__name__,
                        **raised_at(error),
                    }
                },
            )
            if started:
                return  # the answer had begun: nothing more can be said on this response
            await send_error(send, 500, "internal_error", f"unexpected error; incident {incident} is logged")


async def send_error(
    send: Send, status: int, code: str, message: str, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    """An error in the `ErrorBody` shape, sent from pure-ASGI code that runs outside the routes."""
    body = json.dumps({"error": code, "message": message}).encode()
    start = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": body})
