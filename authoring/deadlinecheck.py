"""The deadline hooks in the clinical validation (`make validate`): every case of the matrix, the examples and the
real records, with the whole-spine MRI booked, left unbooked at discharge, or dispatched, late and in time.

A case whose reviewed card is critical or warning must get a deadline card from each hook when the MRI is late
(every emergency caught) and none when it is in time; a case with no card must get none either way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from service.cdshooks.deadline import binding_clock, check_deadline
from service.engine.evaluation import Evaluation, evaluate_record
from service.engine.ruleset import RuleSet
from service.fhir.record import PatientRecord, coding_keys

HOOKS = ("appointment-book", "encounter-discharge", "order-dispatch")
_MRI = {
    "coding": [
        {"system": "http://loinc.org", "code": "42698-1", "display": "MR Cervical and thoracic and lumbar spine"}
    ]
}
_ORDER = "ServiceRequest/validation-mri"


@dataclass
class DeadlineTally:
    """Per hook: late MRIs that must be carded and were, and MRIs that must pass in silence and did."""

    must_card: Counter[str] = field(default_factory=Counter)
    carded: Counter[str] = field(default_factory=Counter)
    must_pass: Counter[str] = field(default_factory=Counter)
    passed: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        rows = ["", f"  {'deadline hook':<22} {'late MRI carded':<22} no card when in time or no rule fires"]
        for hook in HOOKS:
            carded = f"{self.carded[hook]}/{self.must_card[hook]}"
            rows.append(f"  {hook:<22} {carded:<22} {self.passed[hook]}/{self.must_pass[hook]}")
        return rows


def _inputs(hook: str, when: datetime | None) -> tuple[list[dict[str, Any]], list[str], list[dict[str, Any]]]:
    """(appointments, dispatched orders, tasks) for the hook, the MRI at `when` (None: none booked, no task)."""
    if hook == "order-dispatch":
        if when is None:
            return [], [_ORDER], []
        period = {"end": when.isoformat()}
        task = {"resourceType": "Task", "id": "validation-task", "status": "requested", "intent": "order"}
        return [], [_ORDER], [{**task, "focus": {"reference": _ORDER}, "restriction": {"period": period}}]
    if when is None:
        return [], [], []
    status = "proposed" if hook == "appointment-book" else "booked"
    slot = {"resourceType": "Appointment", "id": "validation-slot", "status": status, "serviceType": [_MRI]}
    return [{**slot, "start": when.isoformat()}], [], []


Build = Callable[[list[dict[str, Any]]], PatientRecord]


def _evaluations(
    resources: list[dict[str, Any]], build: Build, ruleset: RuleSet, now: datetime, patient_id: str
) -> dict[str, Evaluation]:
    """The evaluation each hook sees: order-dispatch's record holds the MRI order being dispatched."""
    plain = evaluate_record(ruleset, build(resources), now, hook="appointment-book")
    order: dict[str, Any] = {"resourceType": "ServiceRequest", "id": "validation-mri", "status": "active"}
    order["intent"] = "order"
    order |= {"code": _MRI, "subject": {"reference": f"Patient/{patient_id}"}, "authoredOn": now.isoformat()}
    dispatch = evaluate_record(ruleset, build([*resources, order]), now, hook="order-dispatch")
    return {"appointment-book": plain, "encounter-discharge": plain, "order-dispatch": dispatch}


def mri_already_done(resources: list[dict[str, Any]], ruleset: RuleSet) -> bool:
    """The case's record holds a whole-spine MRI study or report (then no deadline is left to keep)."""
    wanted = ruleset.config.whole_spine_mri
    for resource in resources:
        if resource.get("resourceType") not in ("ImagingStudy", "DiagnosticReport"):
            continue
        concepts = [resource.get("code"), *(resource.get("procedureCode") or [])]
        if any(wanted in ruleset.codes.lookup(key) for concept in concepts for key in coding_keys(concept)):
            return True
    return False


@dataclass(frozen=True)
class DeadlineCase:
    """One validation case as the deadline hooks see it: `rules_fire` is the reviewed table's word."""

    name: str
    rules_fire: bool
    resources: list[dict[str, Any]]
    patient_id: str
    now: datetime


def check_case(case: DeadlineCase, build: Build, ruleset: RuleSet, tally: DeadlineTally) -> None:
    """Late and in time, at each deadline hook, for one case; a wrong answer is a safety failure. A late MRI must
    be carded when the reviewed table says a rule fires and no whole-spine MRI has looked at the sign yet (one
    done before the sign does not count: the matrix's mri-before cases)."""
    evaluations = _evaluations(case.resources, build, ruleset, case.now, case.patient_id)
    lead = evaluations["appointment-book"].lead
    # imaged since the sign, as the rule itself judges it (its MRI suggestion dropped), with a study in the record
    imaged = mri_already_done(case.resources, ruleset) and lead is not None and bool(lead.dropped_suggestions)
    must_card = case.rules_fire and not imaged
    for hook, evaluation in evaluations.items():
        clock = binding_clock(evaluation)
        due = clock.due if clock else case.now
        late_at = None if hook == "encounter-discharge" else due + timedelta(days=1)
        late = check_deadline(hook, evaluation, *_inputs(hook, late_at)).late is not None
        in_time = check_deadline(hook, evaluation, *_inputs(hook, due - timedelta(hours=1))).late is not None
        if must_card:
            tally.must_card[hook] += 1
            tally.carded[hook] += late
            if not late:
                tally.failures.append(f"MISSED LATE MRI ({hook}): {case.name}")
        else:
            tally.must_pass[hook] += 1
            tally.passed[hook] += not late
            if late:
                tally.failures.append(f"UNEXPECTED DEADLINE CARD ({hook}): {case.name}")
        tally.must_pass[hook] += 1
        tally.passed[hook] += not in_time
        if in_time:
            tally.failures.append(f"CARD FOR AN MRI IN TIME ({hook}): {case.name}")
