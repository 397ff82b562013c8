"""GET /cds-services: one discovery entry per hook the rule set serves."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service.api.deps import RuleSetDep
from service.cdshooks.models import Discovery, DiscoveryService
from service.engine.ruleset import RuleSet

router = APIRouter(tags=["CDS Hooks"])
DISCOVERY_EXTENSION = "org.mscc-cds.rules"


def discovery_document(ruleset: RuleSet) -> Discovery:
    services = []
    for entry in ruleset.config.services:
        rules = [r for r in ruleset.active() if r.applies_to(entry.hook)]
        services.append(
            DiscoveryService(
                hook=entry.hook,
                title=entry.title,
                description=entry.description,
                id=entry.id,
                prefetch=entry.prefetch,
                usageRequirements=entry.usage_requirements,
                extension={
                    DISCOVERY_EXTENSION: {
                        "rulesetRevision": ruleset.revision,
                        **({"site": ruleset.site.ref} if ruleset.site else {}),
                        "activeRules": [
                            {"id": r.id, "version": r.version, "title": r.spec.title, "indicator": indicator}
                            for r in rules
                            for indicator in [r.spec.card.indicator]
                        ],
                    }
                },
            )
        )
    return Discovery(services=services)


@router.get("/cds-services", response_model=Discovery, summary="Discover the CDS Services")
def discovery(ruleset: RuleSetDep) -> JSONResponse:
    """The services, their hooks and prefetch templates, the rule-set revision and the active rule versions."""
    return JSONResponse(discovery_document(ruleset).dump())
