"""`measurement`: a numeric Observation compared with thresholds, in the thresholds' UCUM unit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Self

from service.engine.criteria.node import Compiling, CriterionNode, CriterionResult, Read
from service.engine.factindex import FactIndex
from service.engine.model import Criterion, Measurement
from service.engine.timing import time_problem
from service.engine.units import UnitError, check_unit, commensurable, convert
from service.engine.valuesets import UNIT

UNIT_PROBLEM = "not compared"  # a value whose unit cannot be converted to the threshold's: a sign not read


@dataclass(frozen=True)
class MeasurementCriterion(CriterionNode):
    kind = "measurement"
    measurement: Measurement
    within: timedelta | None

    @classmethod
    def compile(cls, name: str, spec: Criterion, ctx: Compiling) -> Self:
        measurement = spec.measurement
        assert measurement is not None
        ctx.valueset("measurement.valueset", measurement.valueset)
        within = ctx.window("measurement.within", measurement.within)
        if measurement.unit is not None:
            try:
                check_unit(measurement.unit)
            except UnitError as error:
                ctx.problem("measurement.unit", str(error))
                return cls(name, spec, measurement, within)
        measured = ctx.valuesets.get(measurement.valueset)
        if measured is not None and measured.unit is None:
            ctx.problem(
                "measurement.valueset",
                f"value set {measurement.valueset!r} does not say what its codes are measured in: add the extension "
                f"{UNIT} with the UCUM unit (valueCode), e.g. {{score}} or mmol/L",
            )
        elif measured is not None and not commensurable(measurement.unit, measured.unit):
            threshold = measurement.unit or "no unit (a number such as a score)"
            ctx.problem(
                "measurement.unit",
                f"{threshold} cannot be compared with {measurement.valueset!r}, measured in {measured.unit}: "
                "a threshold must be in the same dimension as what it is compared with",
            )
        return cls(name, spec, measurement, within)

    @property
    def reads(self) -> tuple[Read, ...]:
        return (Read(("Observation",), self.measurement.valueset, sign=True),)

    @property
    def window(self) -> timedelta | None:
        return self.within

    def evaluate(self, index: FactIndex, now: datetime, done: dict[str, CriterionResult]) -> CriterionResult:
        spec = self.measurement
        result = self.result()
        for fact in index.facts(spec.valueset):
            if fact.resource_type != "Observation" or fact.value is None:
                continue
            problem = time_problem(fact, self.within, now)
            if problem:
                result.not_counted.append((fact, problem))
                continue
            try:
                value = convert(fact.value, fact.unit, spec.unit)
            except UnitError as error:
                result.not_counted.append((fact, f"{UNIT_PROBLEM}: {error}"))
                continue
            meets = (
                (spec.at_least is None or value >= spec.at_least)
                and (spec.above is None or value > spec.above)
                and (spec.at_most is None or value <= spec.at_most)
                and (spec.below is None or value < spec.below)
            )
            if meets:
                result.evidence.append(fact)
            else:
                result.not_counted.append((fact, f"value {value:g} does not meet the threshold"))
        result.held = bool(result.evidence)
        return result
