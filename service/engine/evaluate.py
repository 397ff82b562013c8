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
from service.fhir.codes import TEXT
from service.fhir.record import UNCLEAR_ANSWER, Fact, PatientRecord, is_current_status
from service.fhir.textread import TextReader

UNIT_PROBLEM = "not compared"  # a value whose unit cannot be converted to the threshold's: a sign not read
UNDATED = "undated"  # a finding with neither a date nor a clinical status: named to the clinician, never guessed
UNCLEAR = "not read with confidence"  # an answer in words that says neither yes nor no: named to the clinician
_OPEN_ORDER = frozenset({"draft", "active", "on-hold"})
_DONE_STUDY_TYPES = frozenset({"ImagingStudy", "DiagnosticReport"})

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

    def __init__(self, record: PatientRecord, codes: CodeIndex, reader: TextReader | None = None) -> None:
        self.record = record
        self.codes = codes
        self.reader = reader
        self._by_valueset: dict[str, list[Fact]] = {}
        for fact in record.facts:
            holders: set[str] = set()
            for key in fact.keys:
                holders.update(codes.lookup(key))
            for vs_id in holders:
                self._by_valueset.setdefault(vs_id, []).append(fact)

    def facts(self, valueset: str) -> list[Fact]:
        return self._by_valueset.get(valueset, [])

    def says(self, fact: Fact, valueset: str) -> str | None:
        """The words (or the code) by which the fact says it is of `valueset`, denials left out; else None."""
        if any(valueset in self.codes.lookup(k) for k in fact.keys if k[0] != TEXT):
            return fact.label
        if self.reader is None:
            return None
        for mention in self.reader.mentions(fact.text):
            if mention.assertion == "present" and valueset in self.codes.lookup((TEXT, mention.valueset)):
                return mention.words
        return None


def _time_problem(fact: Fact, window: timedelta | None, now: datetime) -> str | None:
    """Why a fact falls outside [now - window, now], or None when it counts."""
    if fact.time is None:
        if window is None or fact.at_encounter:
            return None  # a diagnosis made at this very encounter is current, dated or not
        if fact.resource_type == "Condition" and fact.status in ("active", "recurrence", "relapse"):
            return None  # an undated but active problem is current by its own statement
        if fact.resource_type == "ServiceRequest" and fact.status in _OPEN_ORDER:
            return None  # so is an open order (a draft being signed now, or one placed and not yet done)
        return f"{UNDATED}, with no clinical status: not known to be recent"
    # Differences, not sums: `now + skew` or `now - window` overflow at the ends of the calendar.
    if fact.time.earliest > now and fact.time.earliest - now > CLOCK_SKEW:
        return f"dated {fact.date_text}, after the evaluation time"
    if window is not None and fact.time.latest < now and now - fact.time.latest > window:
        if fact.recorded is not None:  # re-recorded: the onset says it is long-standing
            return f"began {fact.date_text} (recorded {fact.recorded.text}), more than {window.days} days ago"
        return f"dated {fact.date_text}, older than {window.days} days"
    return None


def on_or_after(later: datetime, onset: Fact, now: datetime) -> bool:
    """Was `later` on or after the day the finding began (an undated finding of this encounter began now)?

    A partial onset ("2026-11") is read at its latest, so a scan that may have come before the sign never counts."""
    began = onset.time.latest if onset.time is not None else now
    return later.date() >= began.date()


def _study_time(fact: Fact, now: datetime) -> datetime | None:
    """When an order or study looked at the spine: its date, or now for an undated open order (being signed)."""
    if fact.time is not None:
        return fact.time.earliest
    return now if fact.resource_type == "ServiceRequest" and fact.status in _OPEN_ORDER else None


def _looked_at_since(fact: Fact, studies: list[Fact], now: datetime) -> Fact | None:
    """A study done (or an order completed) on or after the finding began: the sign has been imaged."""
    for study in studies:
        done = study.resource_type in _DONE_STUDY_TYPES or study.status == "completed"
        if done and study.time is not None and on_or_after(study.time.earliest, fact, now):
            return study
    return None


_UNDATED = datetime.min.replace(tzinfo=UTC)


def _sort_time(fact: Fact) -> datetime:
    return fact.time.latest if fact.time else _UNDATED


def _finding(
    c: CompiledCriterion, index: FactIndex, now: datetime, done: dict[str, CriterionResult]
) -> CriterionResult:
    spec = c.spec.finding
    assert spec is not None
    result = CriterionResult(c.name, c.spec.description, "finding", held=False)
    present: list[Fact] = []
    absent: list[Fact] = []
    studies = index.facts(spec.not_followed_by) if spec.not_followed_by else []
    for fact in index.facts(spec.valueset):
        if fact.resource_type not in _FINDING_TYPES:
            continue
        if c.text_pattern is not None and not c.text_pattern.search(fact.text):
            continue
        if spec.text_mentions is not None and index.says(fact, spec.text_mentions) is None:
            continue
        if fact.presence == "unknown":
            unclear = next((p for p in fact.problems if p.startswith(UNCLEAR_ANSWER)), None)
            result.not_counted.append((fact, f"{UNCLEAR}: {unclear}" if unclear else "value absent (dataAbsentReason)"))
            continue
        if not spec.include_resolved and not is_current_status(fact):
            result.not_counted.append((fact, f"clinicalStatus is {fact.status}"))
            continue
        problem = _time_problem(fact, c.window, now)
        if problem:
            result.not_counted.append((fact, problem))
            continue
        imaged = _looked_at_since(fact, studies, now) if fact.presence == "present" else None
        if imaged is not None:
            result.not_counted.append((fact, f"imaged since it began ({imaged.label}, {imaged.date_text})"))
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


def _measurement(
    c: CompiledCriterion, index: FactIndex, now: datetime, done: dict[str, CriterionResult]
) -> CriterionResult:
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


def _order_or_study(
    c: CompiledCriterion, index: FactIndex, now: datetime, done: dict[str, CriterionResult]
) -> CriterionResult:
    spec = c.spec.order_or_study
    assert spec is not None
    result = CriterionResult(c.name, c.spec.description, "order_or_study", held=False)
    signs = done[spec.after_onset_of].evidence if spec.after_onset_of else []
    for fact in index.facts(spec.valueset):
        if fact.resource_type not in _ORDER_TYPES:
            continue
        problem = _time_problem(fact, c.window, now)
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


def _fhirpath(
    c: CompiledCriterion, index: FactIndex, now: datetime, done: dict[str, CriterionResult]
) -> CriterionResult:
    record = index.record
    spec = c.spec.fhirpath
    assert spec is not None
    assert c.fhirpath is not None
    result = CriterionResult(c.name, c.spec.description, "fhirpath", held=False)
    facts = {f.reference: f for f in record.facts if not f.part}
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
    return list({f.key: f for f in facts}.values())


# The data criteria, by kind; all_of / any_of / none_of combine criteria already evaluated (`_combine`).
def _years_between(born: datetime, now: datetime) -> int:
    return now.year - born.year - ((now.month, now.day) < (born.month, born.day))


def _age(c: CompiledCriterion, index: FactIndex, now: datetime, done: dict[str, CriterionResult]) -> CriterionResult:
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


_DATA_CRITERIA: dict[
    str, Callable[[CompiledCriterion, FactIndex, datetime, dict[str, CriterionResult]], CriterionResult]
] = {
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
        done[name] = _combine(c, done) if kind in _COMBINATORS else _DATA_CRITERIA[kind](c, index, now, done)
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
    index = FactIndex(record, ruleset.codes, ruleset.text_reader)
    chosen = rules if rules is not None else ruleset.active()
    return [evaluate_rule(rule, index, now) for rule in chosen if rule.applies_to(hook)]
