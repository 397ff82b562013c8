"""`AuthenticateFirst`: the service and caller checks of `deps.py`, run in front of the routes for the CDS Hooks
POSTs (a hook call, feedback), before the body is read.

An unknown service is answered 404 and an unauthenticated request a bare 401 without the body being parsed or validated,
whatever the body holds (so the order is 404, then 401, then 400), and such a request costs almost nothing. The
verified caller is left in the request state, where `deps.get_hook_call_target` and `FeedbackCallerDep` find it.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.deps import find_service, verify_caller
from service.api.errors import send_error
from service.errors import NotFound, ServiceError, Unauthorized
from service.logs import log_refusal
from service.runtime import Runtime

_HOOK_PATHS = re.compile(r"^/cds-services/([^/]+)(/feedback)?/?$")


class AuthenticateFirst:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _HOOK_PATHS.match(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        runtime = Runtime.of(scope["app"])
        service_id, feedback = match.group(1), match.group(2) is not None
        authorization = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)
        try:
            find_service(runtime.ruleset, service_id)
            caller = await verify_caller(runtime, authorization, service_id, feedback=feedback)
        except NotFound as unknown:
            await _answer(send, scope, unknown)
            return
        except Unauthorized as refusal:
            if not feedback:
                runtime.metrics.calls.labels(service_id, "401").inc()
            runtime.metrics.auth_refusals.labels(service_id, refusal.reason).inc()
            log_refusal(service_id, refusal.status_code, refusal.message, feedback=feedback, check=refusal.reason)
            await _answer(send, scope, refusal)
            return
        scope.setdefault("state", {})["caller"] = caller
        await self.app(scope, receive, send)


async def _answer(send: Send, scope: Scope, error: ServiceError) -> None:
    """A 401 is bare: which check failed is in the log and the metric, never told to the caller (security best
    practices for CDS Hooks: a caller probing tokens learns nothing)."""
    path = scope.get("path", "")
    if isinstance(error, Unauthorized):
        challenge = ((b"www-authenticate", b"Bearer"),)
        await send_error(send, error.status_code, error.code, error.public_message, challenge, path=path)
        return
    await send_error(send, error.status_code, error.code, error.message, path=path)
