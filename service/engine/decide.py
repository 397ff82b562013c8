"""Pure decisions: (rule set, patient record, now) -> one Decision per rule version. No I/O, no clock, no randomness.

Each criterion evaluates itself (engine/criteria/); a decision knows which criteria held, the facts that made each
hold (evidence), the facts that argued against (a later "absent" finding), and the facts not counted and why
(resolved, too old, future-dated).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from service.engine.criteria import CriterionResult, EvaluationError
from service.engine.factindex import FactIndex
from service.engine.ruleset import CompiledRule, RuleSet
from service.fhir.record import Fact, PatientRecord


@dataclass
class Decision:
    rule: CompiledRule
    fired: bool
    criteria: dict[str, CriterionResult]
    evidence: list[Fact]
    dropped_suggestions: list[str]  # orders not offered, because one of their `unless` criteria held

    @property
    def ref(self) -> str:
        return self.rule.ref

    @property
    def errors(self) -> list[tuple[str, EvaluationError]]:
        """(criterion, error) for each resource a criterion could not be evaluated on."""
        return [(name, error) for name, result in self.criteria.items() for error in result.errors]


def decide_rule(rule: CompiledRule, index: FactIndex, now: datetime) -> Decision:
    """Evaluate one rule version against a record whose facts are already indexed."""
    done: dict[str, CriterionResult] = {}
    for name in rule.order:  # children before parents (the loader's topological order)
        done[name] = rule.criteria[name].evaluate(index, now, done)
    top = done[rule.spec.when]
    dropped = [s.order for s in rule.spec.card.suggestions if s.unless and done[s.unless].held]
    return Decision(rule, top.held, done, top.evidence if top.held else [], dropped)


def decide(
    ruleset: RuleSet,
    record: PatientRecord,
    now: datetime,
    *,
    hook: str | None = None,
    rules: list[CompiledRule] | None = None,
) -> list[Decision]:
    """Evaluate the active rules (or the given versions) that apply to `hook`, most urgent first."""
    index = FactIndex(record, ruleset.codes, ruleset.text_reader)
    chosen = rules if rules is not None else ruleset.active()
    return [decide_rule(rule, index, now) for rule in chosen if rule.applies_to(hook)]
