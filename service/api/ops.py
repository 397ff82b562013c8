"""Operator endpoints: liveness, readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from service import __version__
from service.api.deps import RuntimeDep

router = APIRouter(tags=["Operations"])


class Health(BaseModel):
    status: str
    version: str
    rulesetRevision: str  # noqa: N815
    checks: dict[str, str] | None = None


@router.get("/healthz", response_model=Health, summary="Liveness")
def healthz(runtime: RuntimeDep) -> Health:
    return Health(status="ok", version=__version__, rulesetRevision=runtime.ruleset.revision)


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"model": Health, "description": "Not ready: a check failed"}},
    summary="Readiness: rules loaded and storage reachable",
)
def readyz(runtime: RuntimeDep) -> JSONResponse:
    checks = {"rules": "ok"}
    for name, check in runtime.extras.get("readiness", {}).items():
        checks[name] = "ok" if check() else "failing"
    ready = all(v == "ok" for v in checks.values())
    body = Health(
        status="ok" if ready else "unavailable",
        version=__version__,
        rulesetRevision=runtime.ruleset.revision,
        checks=checks,
    )
    return JSONResponse(body.model_dump(exclude_none=True), status_code=200 if ready else 503)
