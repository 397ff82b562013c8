"""Who is calling: the verified JWT caller, checked before the request body is parsed, or nobody in development mode.

`AuthenticateFirst` runs in front of the routes for the CDS Hooks POSTs (a hook call, feedback): an unauthenticated
request is answered 401 without its body being parsed or validated, so it costs the service almost nothing. An
unknown service is answered 404 before that. The routes read the verified caller from the request state.
"""

from __future__ import annotations

import re

from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.errors import send_error
from service.cdshooks.auth import VerifiedCaller
from service.errors import NotFound, ServiceError, Unauthorized
from service.runtime import Runtime

_HOOK_PATHS = re.compile(r"^/cds-services/([^/]+)(/feedback)?/?$")


class AuthenticateFirst:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _HOOK_PATHS.match(scope.get("path", "")) if scope["type"] == "http" else None
        runtime: Runtime | None = getattr(scope["app"].state, "runtime", None) if match else None
        if match is None or scope["method"] != "POST" or runtime is None:
            await self.app(scope, receive, send)
            return
        service_id, feedback = match.group(1), match.group(2) is not None
        if runtime.ruleset.service(service_id) is None:  # 404 first, whatever the token and the body
            await _answer(send, 404, NotFound(f"no CDS service {service_id!r}; see GET /cds-services"))
            return
        if runtime.verifier is None:
            await self.app(scope, receive, send)
            return
        authorization = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)
        try:
            caller = await runtime.verifier.verify(authorization, service_id, feedback=feedback)
        except Unauthorized as refusal:
            if runtime.metrics is not None and not feedback:
                runtime.metrics.calls.labels(service_id, "401").inc()
            await _answer(send, 401, refusal)
            return
        scope.setdefault("state", {})["caller"] = caller
        await self.app(scope, receive, send)


async def _answer(send: Send, status: int, error: ServiceError) -> None:
    challenge = ((b"www-authenticate", b"Bearer"),) if status == 401 else ()
    await send_error(send, status, error.code, error.message, challenge)


async def authenticate(
    runtime: Runtime, request: Request, service_id: str, *, feedback: bool = False
) -> VerifiedCaller | None:
    """The caller `AuthenticateFirst` verified (None in development mode)."""
    if runtime.verifier is None:
        return None
    caller: VerifiedCaller | None = getattr(request.state, "caller", None)
    if caller is None:  # not behind the gate (an app built without it): verify here
        caller = await runtime.verifier.verify(request.headers.get("authorization"), service_id, feedback=feedback)
    return caller
