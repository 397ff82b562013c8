"""GET /reports/rules: how each rule version performs (cards shown, accepted, overridden, reasons)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import AwareDatetime, BaseModel, Field

from service.api.deps import CaughtUpStoreDep, OperatorOnly, RuleSetDep
from service.api.errors import OPERATOR_REFUSED
from service.cdshooks.overrides import reason_reader
from service.store.db import report_csv

router = APIRouter(tags=["Rules"])


class RuleReportRow(BaseModel):
    rule: str
    shown: int
    accepted: int
    overridden: int
    acceptance_rate: float
    override_reasons: dict[str, int] = Field(
        description="overrides by the service's own reason (ruleset.yaml override_reasons); `(category only)` when "
        "the client sent an HL7 category whose display named none of them, `(none given)` without a reason"
    )
    override_categories: dict[str, int] = Field(
        description="overrides by HL7 non-adherence reason category "
        "(http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes): comparable across sites"
    )
    shadow_fired: int | None = Field(
        default=None, description="draft versions in shadow (MSCC_SHADOW_DRAFTS): calls on which it would have fired"
    )
    shadow_evaluated: int | None = Field(default=None, description="drafts: calls on which it was evaluated")
    shadow_agreements: int | None = Field(
        default=None, description="drafts: calls where it fired exactly when its rule's active version did"
    )
    shadow_disagreements: int | None = Field(default=None, description="drafts: calls where it did not")
    disagreement_ids: list[str] | None = Field(
        default=None, description="drafts: decision ids of the latest disagreements (up to 50), newest first"
    )


@router.get(
    "/reports/rules",
    response_model=list[RuleReportRow],
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}, 401: OPERATOR_REFUSED},
    summary="Cards shown, accepted and overridden per rule version",
    dependencies=[OperatorOnly],
)
async def rule_report(
    store: CaughtUpStoreDep,
    ruleset: RuleSetDep,
    format: Annotated[Literal["json", "csv"], Query(description="json (default) or csv")] = "json",
    since: Annotated[AwareDatetime | None, Query(description="only cards shown from this time")] = None,
) -> Response:
    rows = await asyncio.to_thread(store.rule_report, since, reason_reader(ruleset.config))
    if format == "csv":
        return PlainTextResponse(report_csv(rows), media_type="text/csv")
    return JSONResponse(rows)
