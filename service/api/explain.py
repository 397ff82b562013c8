"""For API testers and rule authors: evaluate a plain FHIR Bundle and explain the result; list the rules."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from service.api.deps import OperatorOnly, RuleSetDep, RuleSourceDep, RuntimeDep
from service.api.errors import OPERATOR_REFUSED, ErrorBody, outcome_response
from service.api.examples import bundle_examples
from service.api.strictjson import StrictJsonRoute
from service.cdshooks.cards import CardContext, render_card
from service.cdshooks.models import Card
from service.engine.evaluation import evaluate_record, record_of_bundle
from service.engine.ruleset import CompiledRule, RuleSet
from service.engine.trace import IssueOut, RuleTraceOut, SetAsideOut, issues_out, set_aside_out, trace_decisions
from service.errors import InvalidFhir, RuleSetRefused, UnknownRule
from service.fhir.bundle import BundleType
from service.runtime import Runtime

EVALUATE_REFUSED: dict[str, Any] = {
    "model": ErrorBody,
    "description": "MSCC_OPERATOR_TOKEN is set and the request does not carry it, or (production) it is not set",
}
router = APIRouter(tags=["Rules"], route_class=StrictJsonRoute)
RuleRef = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]*(@\d+\.\d+\.\d+)?$", max_length=200)]


class BundleIn(BaseModel):
    """A FHIR R4 Bundle (collection, searchset, transaction...) holding one patient's resources."""

    model_config = ConfigDict(extra="allow")
    resourceType: Literal["Bundle"]  # noqa: N815
    type: BundleType
    entry: list[dict[str, Any]] | None = None


class EvaluateResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")
    patient: str
    evaluatedAt: str  # noqa: N815
    rulesetRevision: str  # noqa: N815
    cards: list[Card]
    trace: list[RuleTraceOut]
    setAside: list[SetAsideOut] = Field(description="resources not used, and why")  # noqa: N815
    issues: list[IssueOut] = Field(description="invalid resources (only when strict=false)")


class RuleVersionOut(BaseModel):
    version: str
    status: str
    title: str
    indicator: str
    file: str


class RuleOut(BaseModel):
    id: str
    active: str | None
    versions: list[RuleVersionOut]


class SiteOut(BaseModel):
    """The hospital's own codes added to the value sets (MSCC_SITE_DIR)."""

    name: str
    revision: str = Field(description="content hash of site.yaml (the rule-set revision includes it)")
    additions: dict[str, int] = Field(description="value set id: codes the site adds to it")


class RuleListOut(BaseModel):
    rulesetRevision: str  # noqa: N815
    rules: list[RuleOut]
    site: SiteOut | None = None


def _chosen_rules(ruleset: RuleSet, wanted: list[str]) -> list[CompiledRule] | None:
    if not wanted:
        return None
    chosen = []
    for item in wanted:
        rule_id, _, version = item.partition("@")
        rule = ruleset.version(rule_id, version or None)
        if rule is None:
            raise UnknownRule(f"no rule version {item!r}; see GET /rules")
        chosen.append(rule)
    return chosen


@router.post(
    "/evaluate",
    operation_id="evaluate_bundle_evaluate_post",  # the published contract's name, kept when the handler was renamed
    response_model=EvaluateResponse,
    dependencies=[OperatorOnly],
    responses={
        400: {"model": ErrorBody, "description": "`rule` names no rule version (see GET /rules)"},
        401: EVALUATE_REFUSED,
        413: {"model": ErrorBody, "description": "Request body over the size limit (MSCC_EVALUATE_MAX_BYTES)"},
        503: {
            "model": ErrorBody,
            "description": "Busy with other evaluations, or evaluations have used their share of the worker's time "
            "(hook calls come first): try again after Retry-After seconds",
            "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait"}},
        },
        422: outcome_response("Not valid FHIR R4: an OperationOutcome with one issue per problem"),
    },
    summary="Evaluate a FHIR Bundle and explain the result",
)
def explain_bundle(
    bundle: Annotated[BundleIn, Body(openapi_examples=bundle_examples())],
    runtime: RuntimeDep,
    now: Annotated[AwareDatetime | None, Query(description="evaluation time (default: now)")] = None,
    rule: Annotated[
        list[RuleRef],
        Query(description="rule versions to evaluate instead of the active ones: `id` or `id@version` (drafts too)"),
    ] = [],  # noqa: B006 - FastAPI copies defaults per request
    strict: Annotated[bool, Query(description="true: any invalid resource is a 422 OperationOutcome")] = True,
) -> JSONResponse:
    """Cards as the patient-view hook would answer, plus a trace of every rule and criterion with its evidence.

    A tester's tool, bounded so it cannot starve hook calls: closed in production without the operator token, and
    limited in bytes, entries, evaluations at once and share of the worker's time (`api/explaingate.py`)."""
    limit = runtime.settings.evaluate_max_entries
    if len(bundle.entry or []) > limit:
        raise InvalidFhir("the Bundle is too large to evaluate", [("Bundle.entry", f"at most {limit} entries")])
    return _evaluate(bundle, runtime, now, rule, strict)


def _evaluate(bundle: BundleIn, runtime: Runtime, now: datetime | None, rule: list[str], strict: bool) -> JSONResponse:
    ruleset = runtime.ruleset  # one rule set for the whole evaluation, even if a reload swaps it meanwhile
    chosen = _chosen_rules(ruleset, rule)
    record = record_of_bundle(bundle.model_dump(exclude_none=True), ruleset)
    if strict and record.issues:
        problems = [(f"{i.reference} {i.location}", i.message) for i in record.issues]
        raise InvalidFhir("the Bundle holds invalid FHIR", problems)
    evaluation = evaluate_record(ruleset, record, now or runtime.clock(), rules=chosen)
    card = render_card(evaluation, CardContext(runtime.new_uuid, zone=ZoneInfo(runtime.settings.timezone)))
    runtime.metrics.count_set_aside(record)
    body = EvaluateResponse(
        patient=record.patient_id,
        evaluatedAt=evaluation.now.isoformat(timespec="seconds"),
        rulesetRevision=evaluation.revision,
        cards=[card] if card else [],
        trace=trace_decisions(evaluation.decisions),
        setAside=set_aside_out(record),
        issues=issues_out(record),
    )
    return JSONResponse(body.model_dump(mode="json", exclude_none=True))


class ReloadOut(BaseModel):
    outcome: Literal["swapped", "unchanged"]
    rulesetRevision: str  # noqa: N815


@router.post(
    "/rules/reload",
    response_model=ReloadOut,
    dependencies=[OperatorOnly],
    responses={
        401: OPERATOR_REFUSED,
        422: {"model": ErrorBody, "description": "The changed rule set does not validate: the old one keeps serving"},
    },
    summary="Load the rules folder again and swap it in",
)
async def reload_rules(rules: RuleSourceDep) -> ReloadOut:
    """Loads the rules (and site) folder; a valid rule set is swapped in whole, calls under way finish with the old
    one. A rule set that does not validate is refused, listing each problem, and the old one keeps serving. Other
    workers pick up the change from the files within MSCC_RULES_RELOAD_SECONDS."""
    result = await asyncio.to_thread(rules.reload)
    if result.outcome == "refused":
        raise RuleSetRefused(result.revision, list(result.problems))
    return ReloadOut(outcome=result.outcome, rulesetRevision=result.revision)


@router.get(
    "/rules", response_model=RuleListOut, response_model_exclude_none=True, summary="List the rules and their versions"
)
def list_rules(ruleset: RuleSetDep) -> RuleListOut:
    rules = []
    for rule_id, versions in sorted(ruleset.rules.items()):
        active = ruleset.version(rule_id)
        rules.append(
            RuleOut(
                id=rule_id,
                active=active.version if active else None,
                versions=[
                    RuleVersionOut(
                        version=v.version,
                        status=v.spec.status,
                        title=v.spec.title,
                        indicator=v.spec.card.indicator,
                        file=v.path,
                    )
                    for v in versions.values()
                ],
            )
        )
    site = ruleset.site
    site_out = SiteOut(name=site.name, revision=site.revision, additions=site.additions) if site else None
    return RuleListOut(rulesetRevision=ruleset.revision, rules=rules, site=site_out)
