"""`order_or_study`: a ServiceRequest, ImagingStudy or DiagnosticReport, optionally on or after a sign's onset."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Self

from service.engine.criteria.node import ORDER_TYPES, Compiling, CriterionNode, CriterionResult, Read
from service.engine.factindex import FactIndex
from service.engine.model import Criterion, OrderOrStudy
from service.engine.timing import OPEN_ORDER, on_or_after, time_problem
from service.fhir.record import Fact

_TYPES = frozenset(ORDER_TYPES)


def _study_time(fact: Fact, now: datetime) -> datetime | None:
    """When an order or study looked at the spine: its date, or now for an undated open order (being signed)."""
    if fact.time is not None:
        return fact.time.earliest
    return now if fact.resource_type == "ServiceRequest" and fact.status in OPEN_ORDER else None


@dataclass(frozen=True)
class OrderOrStudyCriterion(CriterionNode):
    kind = "order_or_study"
    order: OrderOrStudy
    within: timedelta | None

    @classmethod
    def compile(cls, name: str, spec: Criterion, ctx: Compiling) -> Self:
        order = spec.order_or_study
        assert order is not None
        ctx.valueset("order_or_study.valueset", order.valueset)
        ctx.criterion("order_or_study.after_onset_of", order.after_onset_of)
        return cls(name, spec, order, ctx.window("order_or_study.within", order.within))

    @property
    def reads(self) -> tuple[Read, ...]:
        return (Read(ORDER_TYPES, self.order.valueset),)

    @property
    def depends_on(self) -> tuple[str, ...]:
        return (self.order.after_onset_of,) if self.order.after_onset_of else ()

    @property
    def window(self) -> timedelta | None:
        return self.within

    def evaluate(self, index: FactIndex, now: datetime, done: dict[str, CriterionResult]) -> CriterionResult:
        spec = self.order
        result = self.result()
        signs = done[spec.after_onset_of].evidence if spec.after_onset_of else []
        for fact in index.facts(spec.valueset):
            if fact.resource_type not in _TYPES:
                continue
            problem = time_problem(fact, self.within, now)
            when = _study_time(fact, now)
            before = next((s for s in signs if when is None or not on_or_after(when, s, now)), None)
            if problem:
                result.not_counted.append((fact, problem))
            elif before is not None:
                result.not_counted.append((fact, f"before the onset of {before.label} ({before.date_text})"))
            else:
                result.evidence.append(fact)
        result.held = bool(result.evidence)
        return result
