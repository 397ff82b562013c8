"""GET /cds-services: one discovery entry per hook the rule set serves."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service.api.deps import RuleSetDep, SettingsDep
from service.cdshooks.models import HOOK_VERSIONS, SPEC_VERSION, Discovery, DiscoveryService
from service.engine.ruleset import RuleSet

router = APIRouter(tags=["CDS Hooks"])
DISCOVERY_EXTENSION = "org.mscc-cds.rules"


def discovery_document(ruleset: RuleSet, *, minimal_prefetch: bool = True) -> Discovery:
    services = []
    for entry in ruleset.services(minimal_prefetch=minimal_prefetch):
        rules = [r for r in ruleset.active() if r.applies_to(entry.hook)]
        services.append(
            DiscoveryService(
                hook=entry.hook,
                hookVersion=HOOK_VERSIONS.get(entry.hook),
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
    return Discovery(version=SPEC_VERSION, services=services)


@router.get("/cds-services", response_model=Discovery, summary="Discover the CDS Services")
def discovery(ruleset: RuleSetDep, settings: SettingsDep) -> JSONResponse:
    """The services, their hooks, their prefetch queries (derived from the rules), the revision and the rules."""
    return JSONResponse(discovery_document(ruleset, minimal_prefetch=settings.minimal_prefetch).dump())
