"""Who is calling: the verified JWT caller, or nobody in development mode."""

from __future__ import annotations

from fastapi import Request

from service.cdshooks.auth import VerifiedCaller
from service.runtime import Runtime


async def authenticate(
    runtime: Runtime, request: Request, service_id: str, *, feedback: bool = False
) -> VerifiedCaller | None:
    if runtime.verifier is None:
        return None
    return await runtime.verifier.verify(request.headers.get("authorization"), service_id, feedback=feedback)
