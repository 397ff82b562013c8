"""One evaluation path: a patient record (or a Bundle) to an `Evaluation` that every reader shares.

Cards, the decision log, metrics, the CLI, `rules diff`, rule tests and the clinical validation all read the same
result object, so "which rule leads", "which data made it fire" and "which orders are not offered" are decided once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from service.engine.decide import Decision, decide
from service.engine.ruleset import CompiledRule, RuleSet
from service.engine.unreadable import UnreadableSign, find_unreadable
from service.fhir.bundle import read_patient_bundle
from service.fhir.record import Fact, PatientRecord, build_record


@dataclass(frozen=True)
class Evaluation:
    """What the rules said about one patient at one moment."""

    record: PatientRecord
    now: datetime
    ruleset: RuleSet  # the one rule set every part of the answer comes from, whatever a reload does meanwhile
    decisions: list[Decision]  # the rules that ran for the answer, most urgent first
    shadow: list[Decision]  # drafts evaluated beside them (shadow mode); never shown
    unreadable: tuple[UnreadableSign, ...]  # possible warning signs the engine could not read

    @property
    def revision(self) -> str:
        return self.ruleset.revision

    @cached_property
    def fired(self) -> list[Decision]:
        return [d for d in self.decisions if d.fired]

    @property
    def lead(self) -> Decision | None:
        """The decision whose card is shown: the most urgent rule that fired (the rule set's order)."""
        return self.fired[0] if self.fired else None

    @cached_property
    def evidence(self) -> list[Fact]:
        """Every fired rule's evidence, each resource once, the lead's first."""
        return list({f.key: f for d in self.fired for f in d.evidence}.values())

    @property
    def offered_orders(self) -> list[str]:
        lead = self.lead
        if lead is None:
            return []
        return [s.order for s in lead.rule.spec.card.suggestions if s.order not in lead.dropped_suggestions]

    @property
    def shadow_fired(self) -> list[str]:
        return [d.ref for d in self.shadow if d.fired]


def evaluate_record(
    ruleset: RuleSet,
    record: PatientRecord,
    now: datetime,
    *,
    hook: str | None = None,
    rules: list[CompiledRule] | None = None,
    shadow_drafts: bool = False,
) -> Evaluation:
    """Evaluate the active rules (or the given versions) and, in shadow mode, the drafts over one fact index."""
    chosen = rules if rules is not None else ruleset.active()
    if shadow_drafts and rules is None:
        chosen = chosen + ruleset.drafts()
    evaluated = decide(ruleset, record, now, hook=hook, rules=chosen)
    if rules is None:
        decisions = [d for d in evaluated if d.rule.spec.status == "active"]
        shadow = [d for d in evaluated if d.rule.spec.status == "draft"]
    else:
        decisions, shadow = evaluated, []
    unreadable = tuple(find_unreadable(ruleset, record, decisions))
    return Evaluation(record, now, ruleset, decisions, shadow, unreadable)


def record_of_bundle(bundle: Any, ruleset: RuleSet | None = None) -> PatientRecord:
    """A patient Bundle (parsed JSON) as a record, its words read with the rule set's reader when one is given;
    raises InvalidFhir when it is not one patient's Bundle."""
    patient = read_patient_bundle(bundle)
    text = ruleset.text_path if ruleset is not None else None
    return build_record(patient.patient_id, patient.resources, patient_aliases=patient.aliases, text=text)


def evaluate_bundle(
    ruleset: RuleSet, bundle: Any, now: datetime, *, rules: list[CompiledRule] | None = None
) -> Evaluation:
    return evaluate_record(ruleset, record_of_bundle(bundle, ruleset), now, rules=rules)
