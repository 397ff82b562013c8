"""A decision trace as JSON: every rule and criterion, whether it held, and the data for and against.

This is what an API tester or a rule author reads to see *why* a card appeared or did not.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from service.engine.criteria import CriterionResult
from service.engine.decide import Decision
from service.fhir.record import Fact, PatientRecord


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FactOut(_Out):
    reference: str
    display: str
    date: str
    presence: str
    status: str | None = None
    value: float | None = None


class NotCountedOut(_Out):
    reference: str
    display: str
    reason: str


class CriterionOut(_Out):
    name: str
    description: str
    kind: str
    held: bool
    evidence: list[FactOut]
    against: list[FactOut]
    notCounted: list[NotCountedOut]  # noqa: N815
    notEvaluated: list[NotCountedOut] = Field(  # noqa: N815
        default_factory=list,
        description="resources the criterion failed on (a FHIRPath error): the check is incomplete, never false",
    )


class RuleTraceOut(_Out):
    rule: str
    version: str
    status: str
    title: str
    fired: bool
    criteria: list[CriterionOut]
    droppedSuggestions: list[str]  # noqa: N815


class SetAsideOut(_Out):
    reference: str
    reason: str
    category: str = Field(description="why, as a fixed vocabulary: invalid, no-subject, other-patient, ...")
    unreadable: bool = Field(description="a data problem (not a clinical statement such as entered-in-error)")


class IssueOut(_Out):
    resource: str
    location: str
    message: str
    outcome: Literal["counted", "set aside"] = Field(description="whether the resource still counted")


def fact_out(fact: Fact) -> FactOut:
    return FactOut(
        reference=fact.reference,
        display=fact.label,
        date=fact.date_text,
        presence=fact.presence,
        status=fact.status,
        value=fact.value,
    )


def _criterion(result: CriterionResult) -> CriterionOut:
    return CriterionOut(
        name=result.name,
        description=result.description,
        kind=result.kind,
        held=result.held,
        evidence=[fact_out(f) for f in result.evidence],
        against=[fact_out(f) for f in result.against],
        notCounted=[NotCountedOut(reference=f.reference, display=f.label, reason=r) for f, r in result.not_counted],
        notEvaluated=[NotCountedOut(reference=e.reference, display=e.label, reason=e.problem) for e in result.errors],
    )


def trace_decisions(decisions: list[Decision]) -> list[RuleTraceOut]:
    return [
        RuleTraceOut(
            rule=d.rule.id,
            version=d.rule.version,
            status=d.rule.spec.status,
            title=d.rule.spec.title,
            fired=d.fired,
            criteria=[_criterion(d.criteria[name]) for name in reversed(d.rule.order)],
            droppedSuggestions=d.dropped_suggestions,
        )
        for d in decisions
    ]


def set_aside_out(record: PatientRecord) -> list[SetAsideOut]:
    return [
        SetAsideOut(reference=s.reference, reason=s.reason, category=s.category, unreadable=s.unreadable)
        for s in record.set_aside
    ]


def issues_out(record: PatientRecord) -> list[IssueOut]:
    return [
        IssueOut(resource=i.reference, location=i.location, message=i.message, outcome=i.outcome) for i in record.issues
    ]
