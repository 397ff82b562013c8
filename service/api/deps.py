"""`Annotated` dependencies the routes declare: each names one thing a route needs, and what it answers when
that thing is missing (404 for an unknown service, 401 for a caller without a valid token or operator token).

`AuthenticateFirst` (security.py) runs the same service and caller checks in front of the routes, before the
body is read, so an unauthenticated request never costs a JSON parse; the dependencies then read its result.
"""

from __future__ import annotations

import asyncio
import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.cdshooks.auth import VerifiedCaller
from service.config import Settings
from service.engine.model import ServiceEntry
from service.engine.ruleset import RuleSet
from service.errors import NotFound, Unauthorized
from service.hookcalls import HookCalls
from service.metrics import Metrics
from service.rulesource import RuleSource
from service.runtime import Clock, Runtime
from service.store.db import Store
from service.store.spool import DecisionSpool


async def get_runtime(request: Request) -> Runtime:
    runtime = Runtime.of(request.app)
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_settings(runtime: RuntimeDep) -> Settings:
    return runtime.settings


async def get_ruleset(runtime: RuntimeDep) -> RuleSet:
    return runtime.ruleset


async def get_store(runtime: RuntimeDep) -> Store:
    return runtime.store


async def get_store_caught_up(runtime: RuntimeDep) -> Store:
    """The store, after this worker's journaled decision rows are written: a report sees every call it answered
    (other workers' rows arrive within MSCC_DECISION_FLUSH_SECONDS)."""
    await asyncio.to_thread(runtime.hooks.decisions.flush)
    return runtime.store


async def get_spool(runtime: RuntimeDep) -> DecisionSpool:
    return runtime.spool


async def get_metrics(runtime: RuntimeDep) -> Metrics:
    return runtime.metrics


async def get_rule_source(runtime: RuntimeDep) -> RuleSource:
    return runtime.rules


async def get_clock(runtime: RuntimeDep) -> Clock:
    return runtime.clock


SettingsDep = Annotated[Settings, Depends(get_settings)]
RuleSetDep = Annotated[RuleSet, Depends(get_ruleset)]
StoreDep = Annotated[Store, Depends(get_store)]
CaughtUpStoreDep = Annotated[Store, Depends(get_store_caught_up)]
SpoolDep = Annotated[DecisionSpool, Depends(get_spool)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
ClockDep = Annotated[Clock, Depends(get_clock)]
RuleSourceDep = Annotated[RuleSource, Depends(get_rule_source)]


def find_service(ruleset: RuleSet, service_id: str, *, minimal_prefetch: bool = True) -> ServiceEntry:
    service = ruleset.service(service_id, minimal_prefetch=minimal_prefetch)
    if service is None:
        raise NotFound(f"no CDS service {service_id!r}; see GET /cds-services")
    return service


async def get_service(
    service_id: Annotated[str, Path(description="a service id from discovery", examples=["mscc-patient-view"])],
    ruleset: RuleSetDep,
    settings: SettingsDep,
) -> ServiceEntry:
    return find_service(ruleset, service_id, minimal_prefetch=settings.minimal_prefetch)


ServiceDep = Annotated[ServiceEntry, Depends(get_service)]


async def verify_caller(
    runtime: Runtime, authorization: str | None, service_id: str, *, feedback: bool
) -> VerifiedCaller | None:
    """The verified JWT caller (None in development mode); raises Unauthorized with the reason."""
    if runtime.verifier is None:
        return None
    return await runtime.verifier.verify(authorization, service_id, feedback=feedback)


async def _caller(request: Request, service: ServiceEntry, runtime: Runtime, feedback: bool) -> VerifiedCaller | None:
    verified: VerifiedCaller | None = getattr(request.state, "caller", None)  # set by AuthenticateFirst
    if verified is not None:
        return verified
    return await verify_caller(runtime, request.headers.get("authorization"), service.id, feedback=feedback)


async def get_feedback_caller(request: Request, service: ServiceDep, runtime: RuntimeDep) -> VerifiedCaller | None:
    return await _caller(request, service, runtime, feedback=True)


@dataclass(frozen=True, slots=True)
class HookCallTarget:
    """What a hook call needs, resolved by one dependency (the hot path: each dependency costs time per call)."""

    service: ServiceEntry
    caller: VerifiedCaller | None
    hooks: HookCalls


async def get_hook_call_target(
    request: Request,
    service_id: Annotated[str, Path(description="a service id from discovery", examples=["mscc-patient-view"])],
) -> HookCallTarget:
    runtime = Runtime.of(request.app)
    service = find_service(runtime.ruleset, service_id, minimal_prefetch=runtime.settings.minimal_prefetch)
    return HookCallTarget(service, await _caller(request, service, runtime, feedback=False), runtime.hooks)


HookCallDep = Annotated[HookCallTarget, Depends(get_hook_call_target)]
FeedbackCallerDep = Annotated[VerifiedCaller | None, Depends(get_feedback_caller)]


def carries_operator_token(authorization: str, expected: str) -> bool:
    """Whether an Authorization header is `Bearer <expected>` (compared in constant time)."""
    scheme, _, given = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected.encode())


# Declared so OpenAPI names the scheme and /docs shows an Authorize button that sends the token with "Try it out";
# the check itself reads the header below (the same one the /evaluate gate reads before the body).
operator_bearer = HTTPBearer(
    scheme_name="operatorToken",
    description="MSCC_OPERATOR_TOKEN, when the service sets one (always in production): Bearer <token>",
    auto_error=False,
)


def require_operator(
    request: Request,
    settings: SettingsDep,
    _declared: Annotated[HTTPAuthorizationCredentials | None, Security(operator_bearer)] = None,
) -> None:
    """With MSCC_OPERATOR_TOKEN set, the tester and operator endpoints need it (compared in constant time)."""
    expected = settings.operator_token
    if expected is None:
        return
    if not carries_operator_token(request.headers.get("authorization", ""), expected):
        raise Unauthorized(
            "this endpoint needs the operator token: Authorization: Bearer <MSCC_OPERATOR_TOKEN>",
            reason="operator_token",
        )


OperatorOnly = Depends(require_operator)
