"""`all_of`, `any_of`, `none_of`: criteria that combine other criteria of the same rule (read nothing themselves)."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Self

from service.engine.criteria.node import Compiling, CriterionNode, CriterionResult, Read
from service.engine.factindex import FactIndex
from service.engine.model import Criterion
from service.fhir.record import Fact


def _unique(facts: Iterable[Fact]) -> list[Fact]:
    return list({f.key: f for f in facts}.values())


@dataclass(frozen=True)
class Combination(CriterionNode):
    children: tuple[str, ...]

    @classmethod
    def compile(cls, name: str, spec: Criterion, ctx: Compiling) -> Self:
        children = tuple(spec.children)
        for child in children:
            ctx.criterion(cls.kind, child)
        return cls(name, spec, children)

    @property
    def reads(self) -> tuple[Read, ...]:
        return ()  # its children read the record

    @property
    def depends_on(self) -> tuple[str, ...]:
        return self.children

    @abstractmethod
    def holds(self, children: list[CriterionResult]) -> bool:
        """Whether the combination holds, given its children's results."""

    def evaluate(self, index: FactIndex, now: datetime, done: dict[str, CriterionResult]) -> CriterionResult:
        children = [done[name] for name in self.children]
        held = self.holds(children)
        result = self.result(held=held)
        if held and self.kind != "none_of":
            result.evidence = _unique(f for r in children if r.held for f in r.evidence)
        return result


@dataclass(frozen=True)
class AllOf(Combination):
    kind = "all_of"

    def holds(self, children: list[CriterionResult]) -> bool:
        return all(r.held for r in children)


@dataclass(frozen=True)
class AnyOf(Combination):
    kind = "any_of"

    def holds(self, children: list[CriterionResult]) -> bool:
        return any(r.held for r in children)


@dataclass(frozen=True)
class NoneOf(Combination):
    kind = "none_of"

    def holds(self, children: list[CriterionResult]) -> bool:
        return not any(r.held for r in children)
