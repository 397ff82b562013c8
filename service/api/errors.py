"""Every error answered in one place: the CDS Hooks endpoints (`/cds-services...`) and the FHIR endpoint answer an
OperationOutcome (CDS Hooks 3.0 "Returning OperationOutcome"), the operator endpoints a small JSON `ErrorBody`.

A CDS Hooks error's OperationOutcome carries the service's error code (`bad_request`, `precondition_failed`, ...)
as `issue[0].details.coding`, its message as `details.text`, and each detail as an issue of its own. Nothing reaches
the client as a bare 500 with a stack trace; an unexpected error is logged (without request data) and answered
with a 500 that names a correlation id.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import InvalidFhir, ServiceError, Unauthorized, field_problems
from service.logs import raised_at

log = logging.getLogger("service.errors")
FHIR_PATHS = ("/evaluate",)
CDS_PATHS = "/cds-services"
FHIR_JSON = "application/fhir+json"
ERROR_CODE_SYSTEM = "https://mscc-cds.example.org/CodeSystem/error"
# HTTP status -> FHIR issue type (http://hl7.org/fhir/issue-type)
_ISSUE_TYPES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    412: "processing",
    413: "too-long",
    415: "not-supported",
    422: "invalid",
    429: "throttled",
    503: "transient",
}


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


class OutcomeCoding(BaseModel):
    system: str
    code: str


class OutcomeDetails(BaseModel):
    coding: list[OutcomeCoding] | None = None
    text: str


class OutcomeIssue(BaseModel):
    severity: Literal["fatal", "error", "warning", "information"]
    code: str = Field(description="FHIR issue type")
    details: OutcomeDetails | None = None
    diagnostics: str | None = None
    expression: list[str] | None = None


class OperationOutcome(BaseModel):
    """The body of every non-2xx answer of a CDS Hooks endpoint (and of /evaluate's 422)."""

    resourceType: Literal["OperationOutcome"]  # noqa: N815
    issue: list[OutcomeIssue] = Field(min_length=1)


def outcome_response(description: str) -> dict[str, Any]:
    """An OpenAPI response whose body is an OperationOutcome, as FHIR JSON."""
    schema = {"$ref": "#/components/schemas/OperationOutcome"}
    return {"model": OperationOutcome, "description": description, "content": {FHIR_JSON: {"schema": schema}}}


def cds_error_responses(described: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for a CDS Hooks endpoint's errors: each an OperationOutcome."""
    return {status: outcome_response(text) for status, text in described.items()}


def error_outcome(status: int, code: str, message: str, details: list[str] | None = None) -> dict[str, Any]:
    """An error as an OperationOutcome: the message and the service's error code first, then one issue per detail."""
    kind = _ISSUE_TYPES.get(status, "exception")
    coding = [{"system": ERROR_CODE_SYSTEM, "code": code}]
    issues: list[dict[str, Any]] = [{"severity": "error", "code": kind, "details": {"coding": coding, "text": message}}]
    issues.extend({"severity": "error", "code": kind, "diagnostics": detail} for detail in details or [])
    return {"resourceType": "OperationOutcome", "issue": issues}


def answers_outcome(path: str) -> bool:
    """Does this path answer its errors as OperationOutcomes? (The CDS Hooks endpoints: discovery, services,
    feedback.)"""
    return path == CDS_PATHS or path.startswith(CDS_PATHS + "/")


def error_response(
    status: int, code: str, message: str, details: list[str] | None = None, *, path: str = ""
) -> JSONResponse:
    if answers_outcome(path):
        return JSONResponse(error_outcome(status, code, message, details), status_code=status, media_type=FHIR_JSON)
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
    return error_response(400, "bad_request", message, [f"{a}: {b}" for a, b in problems], path=request.url.path)


async def _on_service_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ServiceError)
    if isinstance(error, InvalidFhir):
        return JSONResponse(operation_outcome(error.problems), status_code=422, media_type=FHIR_JSON)
    headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if error.status_code == 401 else None
    path = request.url.path
    if isinstance(error, Unauthorized) and answers_outcome(path):  # bare: the reason is for the log (security.py)
        response = error_response(error.status_code, error.code, error.public_message, path=path)
    else:
        response = error_response(error.status_code, error.code, error.message, error.details, path=path)
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
    code = _HTTP_CODES.get(error.status_code, "error")
    response = error_response(error.status_code, code, message, path=request.url.path)
    response.headers.update(error.headers or {})
    return response


async def _on_unexpected(request: Request, error: Exception) -> JSONResponse:
    incident = str(uuid.uuid4())
    log.error(
        "unhandled error",
        extra={"fields": {"incident": incident, "method": request.method, "path": request.url.path}},
        exc_info=error,
    )
    message = f"unexpected error; incident {incident} is logged"
    return error_response(500, "internal_error", message, path=request.url.path)


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
            message = f"unexpected error; incident {incident} is logged"
            await send_error(send, 500, "internal_error", message, path=scope.get("path", ""))


async def send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    headers: tuple[tuple[bytes, bytes], ...] = (),
    *,
    path: str = "",
) -> None:
    """An error sent from pure-ASGI code that runs outside the routes, in the shape its path answers."""
    if answers_outcome(path):
        body, media = json.dumps(error_outcome(status, code, message)).encode(), FHIR_JSON.encode()
    else:
        body, media = json.dumps({"error": code, "message": message}).encode(), b"application/json"
    start = [(b"content-type", media), (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": body})
