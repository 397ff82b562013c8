"""Warning signs the record holds but the engine could not read: they must reach the clinician, never vanish.

A resource that is invalid where it matters, names no patient, carries a score off its scale, is coded without a
code system, or whose date or status could not be read can still be a cord compression or a cancer. When its codes
belong to a value set a rule reads, it is listed here; the card then names it (or, when no rule fired, a card of its
own says the check is incomplete). Clinical statements (entered-in-error, refuted, another patient's) are honoured,
not listed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from service.engine.criteria.finding import UNCLEAR
from service.engine.criteria.measurement import UNIT_PROBLEM
from service.engine.decide import Decision
from service.engine.ruleset import RuleSet
from service.engine.timing import UNDATED
from service.fhir.codes import TEXT
from service.fhir.record import Fact, Key, PatientRecord, SetAside

# Fields whose problems can change what the engine reads: when a problem sits elsewhere, the fact is intact.
_READ_FIELDS = frozenset(
    {
        "code",
        "valueCodeableConcept",
        "valueBoolean",
        "valueQuantity",
        "valueInteger",
        "valueString",
        "status",
        "clinicalStatus",
        "verificationStatus",
        "onsetDateTime",
        "onsetPeriod",
        "recordedDate",
        "abatementDateTime",
        "effectiveDateTime",
        "effectiveInstant",
        "effectivePeriod",
        "issued",
    }
)


@dataclass(frozen=True, slots=True)
class UnreadableSign:
    """A possible warning sign that could not be read, as the clinician should see it."""

    reference: str
    label: str
    date_text: str
    problem: str


def _hits(ruleset: RuleSet, keys: Iterable[Key], systemless: Iterable[str], wanted: frozenset[str]) -> bool:
    return any(ruleset.codes.lookup(k) & wanted for k in keys) or any(
        ruleset.codes.lookup_any_system(c) & wanted for c in systemless
    )


def _established(ruleset: RuleSet, record: PatientRecord) -> frozenset[str]:
    """Value sets some present fact of the record already holds: words that only suppose one of them (a suspected
    cancer in a patient whose cancer is coded) add nothing the clinician must check."""
    held: set[str] = set()
    for fact in record.facts:
        if fact.presence == "present":
            for key in fact.keys:
                held |= ruleset.codes.lookup(key)
    return frozenset(held)


def _read_field_problems(fact: Fact) -> list[str]:
    """The fact's input problems that sit in a field the engine reads (`Observation.effectiveDateTime: ...`)."""
    problems = []
    for problem in fact.problems:
        location = problem.split(":", 1)[0]
        field = location.split(".")[1].split("[")[0] if "." in location else ""
        if field in _READ_FIELDS:
            problems.append(location)
    return problems


def _from_set_aside(item: SetAside) -> UnreadableSign:
    return UnreadableSign(item.reference, item.label or "(no display)", item.date_text, item.reason)


def _evaluation_errors(decisions: list[Decision]) -> list[UnreadableSign]:
    signs: dict[str, UnreadableSign] = {}
    for decision in decisions:
        for _, error in decision.errors:
            signs.setdefault(
                error.reference, UnreadableSign(error.reference, error.label, error.date_text, error.problem)
            )
    return list(signs.values())


def find_unreadable(ruleset: RuleSet, record: PatientRecord, decisions: list[Decision]) -> list[UnreadableSign]:
    """Possible warning signs in the record that the engine could not use, for the decisions' rules, and the
    resources a criterion could not be evaluated on (a check left incomplete, whatever the resource holds)."""
    failed = _evaluation_errors(decisions)
    wanted = frozenset().union(*(d.rule.sign_valuesets for d in decisions))
    if not wanted:
        return failed
    in_words = [i for i in record.set_aside if i.keys and all(k[0] == TEXT for k in i.keys)]
    known = _established(ruleset, record) if in_words else frozenset()  # only when words were not read
    signs = [
        _from_set_aside(item)
        for item in record.set_aside
        if item.unreadable
        and _hits(ruleset, item.keys, item.systemless, wanted)
        and not (item in in_words and all(k[1] in known for k in item.keys))
    ]
    used = {f.reference for d in decisions if d.fired for f in d.evidence} | {s.reference for s in failed}
    signs = failed + signs
    # Measurements in a unit the threshold's cannot be converted to, findings with neither a date nor a status,
    # answers in words that say neither yes nor no: never guessed, always named.
    named = (UNIT_PROBLEM, UNDATED, UNCLEAR)
    for decision in decisions:
        for result in decision.criteria.values():
            for fact, reason in result.not_counted:
                if reason.startswith(named) and fact.reference not in used:
                    fields = _read_field_problems(fact)  # "could not read effectiveDateTime" says more than "undated"
                    if fields and reason.startswith(UNDATED):
                        reason = f"could not read {', '.join(fields)}"
                    signs.append(UnreadableSign(fact.reference, fact.label, fact.date_text, reason))
                    used.add(fact.reference)
    for fact in record.facts:
        if fact.reference in used:
            continue
        if fact.systemless and _hits(ruleset, (), fact.systemless, wanted):
            codes = ", ".join(fact.systemless)
            signs.append(UnreadableSign(fact.reference, fact.label, fact.date_text, f"coded {codes} with no system"))
            continue
        problems = _read_field_problems(fact)
        if problems and _hits(ruleset, fact.keys, (), wanted):
            where = ", ".join(problems)
            signs.append(UnreadableSign(fact.reference, fact.label, fact.date_text, f"could not read {where}"))
    return signs
