"""`fhirpath`: the escape hatch, a FHIRPath expression true for some resource of one type (reads every one)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self

from fhirpathpy import compile as compile_fhirpath

from service.engine.criteria.node import (
    NOT_EVALUATED,
    Compiling,
    CriterionNode,
    CriterionResult,
    EvaluationError,
    Read,
)
from service.engine.factindex import FactIndex
from service.engine.fhirpath import FhirPathError, check_expression
from service.engine.model import Criterion, FhirPathCheck


def _never(_: dict[str, Any]) -> Any:
    return None


@dataclass(frozen=True)
class FhirPathCriterion(CriterionNode):
    kind = "fhirpath"
    check: FhirPathCheck
    expression: Callable[[dict[str, Any]], Any]

    @classmethod
    def compile(cls, name: str, spec: Criterion, ctx: Compiling) -> Self:
        check = spec.fhirpath
        assert check is not None
        try:
            check_expression(check.expression, check.resource_type)  # parse and type-check first
            compiled = compile_fhirpath(check.expression)

            def expression(resource: dict[str, Any], compiled: Any = compiled) -> Any:
                return compiled(resource, None)

            expression({"resourceType": check.resource_type})
        except FhirPathError as error:
            ctx.problem("fhirpath.expression", f"not valid FHIRPath: {error}")
            return cls(name, spec, check, _never)
        except Exception as error:  # fhirpathpy raises bare Exception when it cannot run an expression
            ctx.problem("fhirpath.expression", f"not valid FHIRPath: {error}")
            return cls(name, spec, check, _never)
        return cls(name, spec, check, expression)

    @property
    def reads(self) -> tuple[Read, ...]:
        return (Read((self.check.resource_type,), None),)  # every resource of its type: no code list says which

    def evaluate(self, index: FactIndex, now: datetime, done: dict[str, CriterionResult]) -> CriterionResult:
        record = index.record
        result = self.result()
        facts = {f.reference: f for f in record.facts if not f.part}
        for resource in record.resources:
            if resource.get("resourceType") != self.check.resource_type:
                continue
            reference = f"{resource['resourceType']}/{resource.get('id', '?')}"
            try:
                value = self.expression(resource)
            except Exception as error:  # fhirpathpy raises bare Exception, TypeError, ... on data it cannot handle
                fact = facts.get(reference)
                label, date_text = (fact.label, fact.date_text) if fact is not None else (self.check.resource_type, "")
                problem = f"{NOT_EVALUATED}: FHIRPath failed on it ({type(error).__name__})"
                result.errors.append(EvaluationError(reference, label, date_text, problem))
                continue
            if value and value != [False]:
                fact = facts.get(reference)
                if fact is not None:
                    result.evidence.append(fact)
        result.held = bool(result.evidence)
        return result
