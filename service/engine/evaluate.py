"""Pure evaluation: (rule set, patient record, now) -> decisions. No I/O, no clock, no randomness.

A decision knows which criteria held, the facts that made each hold (evidence), the facts that argued
against (a later "absent" finding), and the facts not counted and why (resolved, too old, future-dated).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from service.engine.ruleset import CompiledCriterion, CompiledRule, RuleSet
from service.engine.units import UnitError, convert
from service.engine.valuesets import CodeIndex
from service.fhir.record import Fact, PatientRecord, is_current_status

UNIT_PROBLEM = "not compared"  # a value whose unit cannot be converted to the threshold's: a sign not read

# Clocks differ between the EHR and us: a finding dated a few minutes "in the future" is still now.
CLOCK_SKEW = timedelta(minutes=5)
_FINDING_TYPES = frozenset({"Condition", "Observation"})
_ORDER_TYPES = frozenset({"ServiceRequest", "ImagingStudy", "DiagnosticReport"})


@dataclass
class CriterionResult:
    name: str
    description: str
    kind: str
    held: bool
    evidence: list[Fact] = field(default_factory=list)
    against: list[Fact] = field(default_factory=list)
    not_counted: list[tuple[Fact, str]] = field(default_factory=list)


@dataclass
class Decision:
    rule: CompiledRule
    fired: bool
    criteria: dict[str, CriterionResult]
    evidence: list[Fact]
    dropped_suggestions: list[str] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return self.rule.ref


class FactIndex:
    """The record's facts grouped by value set: every coding of every fact is looked up exactly once."""

    def __init__(self, record: PatientRecord, codes: CodeIndex) -> None:
        self.record = record
        self._by_valueset: dict[str, list[Fact]] = {}
        for fact in record.facts:
            holders: set[str] = set()
            for key in fact.keys:
                holders.update(codes.lookup(key))
            for vs_id in holders:
                self._by_valueset.setdefault(vs_id, []).append(fact)

    def facts(self, valueset: str) -> list[Fact]:
        return self._by_valueset.get(valueset, [])


def _time_problem(fact: Fact, window: timedelta | None, now: datetime) -> str | None:
    """Why a fact falls outside [now - window, now], or None when it counts."""
    if fact.time is None:
        if window is None:
            return None
        if fact.resource_type == "Condition" and fact.status in ("active", "recurrence", "relapse"):
            return None  # an undated but active problem is current by its own statement
        if fact.resource_type == "ServiceRequest" and fact.status in ("draft", "active", "on-hold"):
            return None  # so is an open order (a draft being signed now, or one placed and not yet done)
        return "undated, so not known to be recent"
    # Differences, not sums: `now + skew` or `now - window` overflow at the ends of the calendar.
    if fact.time.earliest > now and fact.time.earliest - now > CLOCK_SKEW:
        return f"dated {fact.date_text}, after the evaluation time"
    if window is not None and fact.time.latest < now and now - fact.time.latest > window:
        return f"dated {fact.date_text}, older than {window.days} days"
    return None


_UNDATED = datetime.min.replace(tzinfo=UTC)


def _sort_time(fact: Fact) -> datetime:
    return fact.time.latest if fact.time else _UNDATED


def _finding(c: CompiledCriterion, index: FactIndex, now: datetime) -> CriterionResult:
    spec = c.spec.finding
    assert spec is not None
    result = CriterionResult(c.name, c.spec.description, "finding", held=False)
    present: list[Fact] = []
    absent: list[Fact] = []
    for fact in index.facts(spec.valueset):
        if fact.resource_type not in _FINDING_TYPES:
            continue
        if c.text_pattern is not None and not c.text_pattern.search(fact.text):
            continue
        if fact.presence == "unknown":
            result.not_counted.append((fact, "value absent (dataAbsentReason)"))
            continue
        if not spec.include_resolved and not is_current_status(fact):
            result.not_counted.append((fact, f"clinicalStatus is {fact.status}"))
            continue
        problem = _time_problem(fact, c.window, now)
        if problem:
            result.not_counted.append((fact, problem))
            continue
        (present if fact.presence == "present" else absent).append(fact)
    for fact in present:
        negations = [a for a in absent if set(a.keys) & set(fact.keys) and _sort_time(a) >= _sort_time(fact)]
        if negations:
            result.against.extend(n for n in negations if n not in result.against)
            result.not_counted.append((fact, f"recorded as absent later ({negations[0].reference})"))
        else:
            result.evidence.append(fact)
    result.against.extend(a for a in absent if a not in result.against and not result.evidence)
    result.held = bool(result.evidence)
    return result


def _measurement(c: CompiledCriterion, index: FactIndex, now: datetime) -> CriterionResult:
    spec = c.spec.measurement
    assert spec is not None
    result = CriterionResult(c.name, c.spec.description, "measurement", held=False)
    for fact in index.facts(spec.valueset):
        if fact.resource_type != "Observation" or fact.value is None:
            continue
        problem = _time_problem(fact, c.window, now)
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


def _order_or_study(c: CompiledCriterion, index: FactIndex, now: datetime) -> CriterionResult:
    spec = c.spec.order_or_study
    assert spec is not None
    result = CriterionResult(c.name, c.spec.description, "order_or_study", held=False)
    for fact in index.facts(spec.valueset):
        if fact.resource_type not in _ORDER_TYPES:
            continue
        problem = _time_problem(fact, c.window, now)
        if problem:
            result.not_counted.append((fact, problem))
        else:
            result.evidence.append(fact)
    result.held = bool(result.evidence)
    return result


def _fhirpath(c: CompiledCriterion, index: FactIndex, now: datetime) -> CriterionResult:
    record = index.record
    spec = c.spec.fhirpath
    assert spec is not None
    assert c.fhirpath is not None
    result = CriterionResult(c.name, c.spec.description, "fhirpath", held=False)
    facts = {f.reference: f for f in record.facts}
    for resource in record.resources:
        if resource.get("resourceType") != spec.resource_type:
            continue
        try:
            value = c.fhirpath(resource)
        except Exception:  # noqa: S112 - an expression that fails on one resource says nothing about it
            continue
        if value and value != [False]:
            fact = facts.get(f"{resource['resourceType']}/{resource.get('id', '?')}")
            if fact is not None:
                result.evidence.append(fact)
    result.held = bool(result.evidence)
    return result


def _combine(c: CompiledCriterion, done: dict[str, CriterionResult]) -> CriterionResult:
    children = [done[name] for name in c.spec.children]
    kind = c.kind
    if kind == "all_of":
        held = all(r.held for r in children)
    elif kind == "any_of":
        held = any(r.held for r in children)
    else:
        held = not any(r.held for r in children)
    evidence = _unique(f for r in children if r.held and kind != "none_of" for f in r.evidence)
    return CriterionResult(c.name, c.spec.description, kind, held, evidence if held else [])


def _unique(facts: Iterable[Fact]) -> list[Fact]:
    return list({f.reference: f for f in facts}.values())


# The data criteria, by kind; all_of / any_of / none_of combine criteria already evaluated (`_combine`).
def _years_between(born: datetime, now: datetime) -> int:
    return now.year - born.year - ((now.month, now.day) < (born.month, born.day))


def _age(c: CompiledCriterion, index: FactIndex, now: datetime) -> CriterionResult:
    """Age in whole years. A partial birth date (1960, 1960-05) is read on the side that lets the rule fire: a
    missed warning sign costs more than a needless card."""
    spec = c.spec.age
    assert spec is not None
    result = CriterionResult(c.name, c.spec.description, "age", held=False)
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


_DATA_CRITERIA: dict[str, Callable[[CompiledCriterion, FactIndex, datetime], CriterionResult]] = {
    "finding": _finding,
    "measurement": _measurement,
    "order_or_study": _order_or_study,
    "fhirpath": _fhirpath,
    "age": _age,
}
_COMBINATORS = frozenset({"all_of", "any_of", "none_of"})


def evaluate_rule(rule: CompiledRule, index: FactIndex, now: datetime) -> Decision:
    """Evaluate one rule version against a record whose facts are already indexed."""
    done: dict[str, CriterionResult] = {}
    for name in rule.order:  # children before parents (the loader's topological order)
        c = rule.criteria[name]
        kind = c.kind
        done[name] = _combine(c, done) if kind in _COMBINATORS else _DATA_CRITERIA[kind](c, index, now)
    top = done[rule.spec.when]
    dropped = [s.order for s in rule.spec.card.suggestions if s.unless and done[s.unless].held]
    return Decision(rule, top.held, done, top.evidence if top.held else [], dropped)


def evaluate(
    ruleset: RuleSet,
    record: PatientRecord,
    now: datetime,
    *,
    hook: str | None = None,
    rules: list[CompiledRule] | None = None,
) -> list[Decision]:
    """Evaluate the active rules (or the given versions) that apply to `hook`, most urgent first."""
    index = FactIndex(record, ruleset.codes)
    chosen = rules if rules is not None else ruleset.active()
    return [evaluate_rule(rule, index, now) for rule in chosen if rule.applies_to(hook)]
