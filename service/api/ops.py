"""Operator endpoints: liveness, readiness."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from service import __version__
from service.api.deps import MetricsDep, OperatorOnly, RuleSetDep, RuleSourceDep, RuntimeDep, SpoolDep, StoreDep
from service.api.errors import OPERATOR_REFUSED

router = APIRouter(tags=["Operations"])


class Health(BaseModel):
    status: str
    version: str
    rulesetRevision: str  # noqa: N815
    checks: dict[str, str] | None = None


@router.get("/healthz", response_model=Health, summary="Liveness")
def healthz(ruleset: RuleSetDep) -> JSONResponse:
    body = Health(status="ok", version=__version__, rulesetRevision=ruleset.revision)
    return JSONResponse(body.model_dump(exclude_none=True))


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"model": Health, "description": "Not ready: a check failed"}},
    summary="Readiness: rules loaded and storage writable; degraded when decision rows are not durable",
)
async def readyz(
    ruleset: RuleSetDep, rules: RuleSourceDep, store: StoreDep, spool: SpoolDep, runtime: RuntimeDep
) -> JSONResponse:
    """503 while the database refuses writes; "degraded" (still 200 when the database is up) while decision rows
    cannot all be made durable: cards are answered meanwhile, and the operator must see it."""
    writable = await asyncio.to_thread(lambda: store.ping() and store.can_write())
    checks = {"rules": "ok", "database": "ok" if writable else "failing"}
    ready = all(v == "ok" for v in checks.values())
    # Replicas (MSCC_DECISION_WRITE=database) keep answering while the database is down: their rows wait in the
    # journal on shared storage, which another replica drains if this one dies. A load balancer or Kubernetes that
    # took every replica out for the database's outage would stop decision support for nothing.
    journal_holds = not writable and runtime.settings.decision_write == "database" and spool.writable()
    ready = ready or journal_holds
    # Informative, not a readiness failure: hook calls are answered meanwhile.
    checks["decisionSpool"] = f"{await asyncio.to_thread(spool.pending)} rows waiting"
    degraded = runtime.hooks.decisions.degraded
    if journal_holds:
        degraded = [*degraded, "the database refuses writes: decision rows wait in the journal (MSCC_SPOOL_DIR)"]
    checks["decisionDurability"] = "; ".join(degraded) if degraded else "ok"
    refused = rules.last_refusal
    if refused is not None:  # still ready: the previous, valid rule set is serving
        when = refused.at.isoformat(timespec="seconds") if refused.at else "?"
        checks["rulesReload"] = (
            f"changed rule set refused at {when} ({len(refused.problems)} problem(s), see the log and "
            f"POST /rules/reload); serving {refused.revision}"
        )
    body = Health(
        status="degraded" if degraded else "ok" if ready else "unavailable",
        version=__version__,
        rulesetRevision=ruleset.revision,
        checks=checks,
    )
    return JSONResponse(body.model_dump(exclude_none=True), status_code=200 if ready else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text"},
        401: OPERATOR_REFUSED,
    },
    summary="Prometheus metrics",
    dependencies=[OperatorOnly],
)
def metrics(registry: MetricsDep, runtime: RuntimeDep) -> Response:
    runtime.hooks.decisions.observe()  # the journal gauges as of now, not of the last drain
    return Response(registry.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
