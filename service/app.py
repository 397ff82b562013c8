"""The app factory: `create_app(settings)` wires routers, middleware and error handlers around a loaded rule set.

The rule set is loaded here, before the app exists, so a rule set that does not validate stops start-up.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from service import __version__
from service.api import discovery, evaluate, hooks, ops
from service.api.errors import install_error_handlers
from service.api.limits import BodySizeLimit
from service.api.openapi import install_openapi
from service.config import Settings
from service.engine.loader import load_ruleset
from service.runtime import Clock, Runtime, UuidFactory, random_uuid, system_clock

log = logging.getLogger("service")

DESCRIPTION = """\
CDS Hooks 2.0 service that looks for warning signs of spinal metastasis and metastatic spinal cord compression
(MSCC) in a patient's FHIR R4 Conditions and Observations, and answers with a card that recommends an urgent
whole-spine MRI and a referral to the MSCC coordinator / spinal MDT, naming the rule version and the patient data
behind it. Rules are versioned files in `rules/`.
"""


def create_app(
    settings: Settings | None = None, *, clock: Clock = system_clock, new_uuid: UuidFactory = random_uuid
) -> FastAPI:
    settings = settings or Settings()
    ruleset = load_ruleset(settings.rules_dir)
    runtime = Runtime(settings, ruleset, clock, new_uuid)
    if settings.dev_mode:
        log.warning("DEVELOPMENT MODE: JWT verification is OFF and requests may set the evaluation time")
    app = FastAPI(
        title="MSCC warning signs CDS Service",
        version=__version__,
        description=DESCRIPTION,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.runtime = runtime
    for router in (discovery.router, hooks.router, evaluate.router, ops.router):
        app.include_router(router)
    install_error_handlers(app)
    install_openapi(app)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type"],
        max_age=600,
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    log.info("serving rule set %s with %s", ruleset.revision, ", ".join(r.ref for r in ruleset.active()))
    return app
