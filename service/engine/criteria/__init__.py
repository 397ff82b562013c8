"""The criterion kinds, one module each; `KINDS` is the only list of them the engine keeps."""

from __future__ import annotations

from service.engine.criteria.age import AgeCriterion
from service.engine.criteria.combine import AllOf, AnyOf, NoneOf
from service.engine.criteria.fhirpath import FhirPathCriterion
from service.engine.criteria.finding import FindingCriterion
from service.engine.criteria.measurement import MeasurementCriterion
from service.engine.criteria.node import (
    NOT_EVALUATED,
    Compiling,
    CriterionNode,
    CriterionResult,
    EvaluationError,
    Read,
)
from service.engine.criteria.orderstudy import OrderOrStudyCriterion
from service.engine.model import Criterion

KINDS: dict[str, type[CriterionNode]] = {
    kind.kind: kind
    for kind in (
        FindingCriterion,
        MeasurementCriterion,
        OrderOrStudyCriterion,
        FhirPathCriterion,
        AgeCriterion,
        AllOf,
        AnyOf,
        NoneOf,
    )
}


def compile_criterion(name: str, spec: Criterion, ctx: Compiling) -> CriterionNode:
    """The node of the kind `spec` is, its problems reported to `ctx`."""
    return KINDS[spec.kind].compile(name, spec, ctx)


__all__ = [
    "KINDS",
    "NOT_EVALUATED",
    "Compiling",
    "CriterionNode",
    "CriterionResult",
    "EvaluationError",
    "Read",
    "compile_criterion",
]
