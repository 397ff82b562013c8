"""`age`: the patient's age in whole years at the evaluation time, from Patient.birthDate."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Self

from service.engine.criteria.node import Compiling, CriterionNode, CriterionResult, Read
from service.engine.factindex import FactIndex
from service.engine.model import Age, Criterion


def _years_between(born: datetime, now: datetime) -> int:
    return now.year - born.year - ((now.month, now.day) < (born.month, born.day))


@dataclass(frozen=True)
class AgeCriterion(CriterionNode):
    kind = "age"
    age: Age

    @classmethod
    def compile(cls, name: str, spec: Criterion, ctx: Compiling) -> Self:
        assert spec.age is not None
        return cls(name, spec, spec.age)

    @property
    def reads(self) -> tuple[Read, ...]:
        return (Read(("Patient",), None),)  # the ruleset check makes every service it answers prefetch the Patient

    def evaluate(self, index: FactIndex, now: datetime, done: dict[str, CriterionResult]) -> CriterionResult:
        """A partial birth date (1960, 1960-05) is read on the side that lets the rule fire: a missed warning sign
        costs more than a needless card."""
        spec = self.age
        result = self.result()
        birth = index.record.birth
        if birth is None or birth.time is None:
            return result  # no birth date: the trace shows the criterion did not hold, with no evidence
        oldest, youngest = _years_between(birth.time.earliest, now), _years_between(birth.time.latest, now)
        meets = (
            (spec.at_least is None or oldest >= spec.at_least)
            and (spec.above is None or oldest > spec.above)
            and (spec.at_most is None or youngest <= spec.at_most)
            and (spec.below is None or youngest < spec.below)
        )
        age = oldest if oldest == youngest else f"{youngest}-{oldest}"
        fact = dataclasses.replace(birth, label=f"Age {age} (born {birth.time.text})", value=float(oldest), unit="a")
        if meets:
            result.evidence.append(fact)
        else:
            result.not_counted.append((fact, f"age {age} does not meet the threshold"))
        result.held = meets
        return result
