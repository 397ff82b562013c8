"""A compiled criterion: one node of a rule's criteria tree, which checks itself at load and evaluates itself.

Each kind of criterion (finding, measurement, ...) is one class in its own module of this package, carrying
everything about the kind: its load-time checks (`compile`), what it reads from the record (`reads`, from which
the prefetch plan and the relevance filter are built), the criteria it needs evaluated first (`depends_on`), and
its evaluation, whose result is its trace. The rule file's schema of each kind stays in `engine/model.py`, where the
JSON schema for authors is generated from.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Self

from pydantic import TypeAdapter, ValidationError

from service.engine.factindex import FactIndex
from service.engine.model import Criterion, RuleVersion
from service.engine.valuesets import ValueSetDef
from service.fhir.record import Fact

_DURATION = TypeAdapter(timedelta)
FINDING_TYPES = ("Condition", "Observation")
ORDER_TYPES = ("ServiceRequest", "ImagingStudy", "DiagnosticReport")


@dataclass
class CriterionResult:
    """One criterion's verdict on one record, with the facts for it, against it, and those not counted (and why)."""

    name: str
    description: str
    kind: str
    held: bool
    evidence: list[Fact] = field(default_factory=list)
    against: list[Fact] = field(default_factory=list)
    not_counted: list[tuple[Fact, str]] = field(default_factory=list)
    errors: list[EvaluationError] = field(default_factory=list)  # resources it could not be evaluated on


NOT_EVALUATED = "could not be evaluated"


@dataclass(frozen=True)
class EvaluationError:
    """A criterion that failed on one resource: never a silent false. Named on the card as a check left incomplete,
    shown in the trace, a rule-test failure and counted in /metrics."""

    reference: str
    label: str
    date_text: str
    problem: str  # "could not be evaluated: FHIRPath TypeError ..." (no resource values)


@dataclass(frozen=True)
class Read:
    """What a criterion reads: resources of `types` coded in `valueset`, or every one of them (`valueset` None).
    `sign`: the codes can be warning signs, so one that cannot be read is reported on the card."""

    types: tuple[str, ...]
    valueset: str | None
    sign: bool = False


class Compiling:
    """The load-time context of one criterion: its rule, the value sets, and where its problems are reported."""

    def __init__(
        self, name: str, rule: RuleVersion, valuesets: dict[str, ValueSetDef], report: Callable[[str, str], None]
    ) -> None:
        self.name = name
        self.rule = rule
        self.valuesets = valuesets
        self._report = report

    def problem(self, where: str, message: str) -> None:
        """A problem at `criteria.<name>.<where>` of the rule file."""
        self._report(f"criteria.{self.name}.{where}", message)

    def valueset(self, where: str, vs_id: str | None) -> None:
        if vs_id is not None and vs_id not in self.valuesets:
            self.problem(where, f"value set {vs_id!r} does not exist")

    def criterion(self, where: str, name: str | None) -> None:
        if name is not None and name not in self.rule.criteria:
            self.problem(where, f"criterion {name!r} is not defined")

    def window(self, where: str, value: str | None) -> timedelta | None:
        """An ISO 8601 duration, or a `$parameter` of the rule naming one."""
        if value is None:
            return None
        if value.startswith("$"):
            name = value[1:]
            if name not in self.rule.parameters:
                self.problem(where, f"parameter {name!r} is not defined under parameters")
                return None
            value = str(self.rule.parameters[name])
        try:
            return _DURATION.validate_python(value)
        except ValidationError:
            self.problem(where, f"{value!r} is not an ISO 8601 duration such as P30D")
            return None


@dataclass(frozen=True)
class CriterionNode(ABC):
    """A criterion as compiled: `spec` is what the author wrote (authoring tools read it)."""

    kind: ClassVar[str]
    name: str
    spec: Criterion

    @classmethod
    @abstractmethod
    def compile(cls, name: str, spec: Criterion, ctx: Compiling) -> Self:
        """The node for `spec`, after reporting every problem of it to `ctx` (the rule set is refused if any)."""

    @property
    @abstractmethod
    def reads(self) -> tuple[Read, ...]:
        """What it reads from the record; empty only for a kind that combines other criteria."""

    @property
    def depends_on(self) -> tuple[str, ...]:
        """Criteria to evaluate before this one."""
        return ()

    @property
    def window(self) -> timedelta | None:
        """How far back its facts count (None: any time)."""
        return None

    @abstractmethod
    def evaluate(self, index: FactIndex, now: datetime, done: dict[str, CriterionResult]) -> CriterionResult:
        """Its verdict, given the results of the criteria it depends on (`done`)."""

    def result(self, *, held: bool = False) -> CriterionResult:
        return CriterionResult(self.name, self.spec.description, self.kind, held)

    def body(self) -> Any:
        """The kind's own part of the spec (e.g. the `finding:` mapping)."""
        return getattr(self.spec, self.kind)
