"""Holding the NG234 clock: the hooks at which an MRI can slip past its deadline (appointment-book,
encounter-discharge, order-dispatch), and whether the whole-spine MRI is done, booked or dispatched in time.

A rule states its deadline (`deadline.mri_within`, counted from the evidence of `deadline.counted_from`): 24 hours
for suspected MSCC, a week for spinal pain suggesting metastases. Of the rules that fired, the one whose MRI is due
first sets the clock. An MRI done since the clock started needs no card; one booked or dispatched in time needs
none either. Late, unbooked at discharge, or with no time to check (named in the answer), it gets a card.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from service.engine.decide import Decision
from service.engine.evaluation import Evaluation
from service.engine.valuesets import CodeIndex
from service.fhir.dates import parse_fhir_time
from service.fhir.record import Fact, coding_keys
from service.fhir.validate import InputIssue, reference_of

DEADLINE_HOOKS = frozenset({"appointment-book", "encounter-discharge", "order-dispatch"})
_DONE_TYPES = frozenset({"ImagingStudy", "DiagnosticReport"})
_BOOKED = frozenset({"proposed", "pending", "booked", "arrived", "checked-in", "waitlist"})


@dataclass(frozen=True)
class Clock:
    """When the rule's MRI is due: `started` (the evidence was known) plus the rule's `mri_within`."""

    decision: Decision
    started: datetime
    due: datetime
    now: datetime

    @property
    def within_text(self) -> str:
        deadline = self.decision.rule.spec.deadline
        return deadline.mri_within if deadline else ""


@dataclass(frozen=True)
class Late:
    """Why the card is shown: what the hook was about to do, and when the MRI would happen (None: not booked, or
    no time could be read)."""

    clock: Clock
    event: str  # "booked", "dispatched", "discharged"
    when: datetime | None
    what: str  # the appointment's or order's name, for the card
    now: datetime  # the evaluation time: a deadline already past reads "was due"


@dataclass(frozen=True)
class DeadlineCheck:
    late: Late | None = None
    issues: list[InputIssue] = field(default_factory=list)


def _known_at(fact: Fact) -> datetime | None:
    """When the finding was known: the later of its time and its recorded date."""
    if fact.time is None:
        return fact.recorded.earliest if fact.recorded else None
    if fact.recorded is not None:
        return max(fact.time.earliest, fact.recorded.earliest)
    return fact.time.earliest


def first_held(decision: Decision, name: str) -> datetime | None:
    """When the criterion first held, as far as the record tells: a finding when its earliest evidence was known;
    `all_of` when the last of its parts came true; `any_of` when the first did. A criterion that holds with no
    dated evidence (an absence) does not move the clock."""
    result = decision.criteria.get(name)
    if result is None or not result.held:
        return None
    if result.kind in ("all_of", "any_of"):
        parts = [t for t in (first_held(decision, c) for c in decision.rule.criteria[name].spec.children) if t]
        if not parts:
            return None
        return max(parts) if result.kind == "all_of" else min(parts)
    times = [t for t in (_known_at(f) for f in result.evidence) if t is not None]
    return min(times) if times else None


def clock_of(decision: Decision, now: datetime) -> Clock | None:
    """The decision's deadline (None when its rule states none): from the moment the rule's suspicion first held
    (its `counted_from` criterion, else the one that fires it), undated evidence counting from now."""
    deadline = decision.rule.spec.deadline
    within = deadline.duration() if deadline else None
    if deadline is None or within is None:
        return None
    started = first_held(decision, deadline.counted_from or decision.rule.spec.when) or now
    return Clock(decision, started, started + within, now)


def binding_clock(evaluation: Evaluation) -> Clock | None:
    """Of the rules that fired, the one whose MRI is due first."""
    clocks = [c for c in (clock_of(d, evaluation.now) for d in evaluation.fired) if c is not None]
    return min(clocks, key=lambda c: c.due) if clocks else None


def _is_mri(codes: CodeIndex, valueset: str, concepts: Iterable[Any]) -> bool:
    return any(valueset in codes.lookup(key) for concept in concepts for key in coding_keys(concept))


def mri_done_since(evaluation: Evaluation, codes: CodeIndex, valueset: str, since: datetime) -> Fact | None:
    """A whole-spine MRI study or report (or a completed order) dated on or after `since`."""
    for fact in evaluation.record.facts:
        done = fact.resource_type in _DONE_TYPES or (
            fact.resource_type == "ServiceRequest" and fact.status == "completed"
        )
        if not done or fact.time is None or fact.time.latest < since:
            continue
        if any(valueset in codes.lookup(key) for key in fact.keys):
            return fact
    return None


def _mri_orders(evaluation: Evaluation, codes: CodeIndex, valueset: str) -> dict[str, Fact]:
    """The whole-spine MRI orders in the record, by reference (`ServiceRequest/abc`)."""
    return {
        f.reference: f
        for f in evaluation.record.facts
        if f.resource_type == "ServiceRequest" and any(valueset in codes.lookup(k) for k in f.keys)
    }


def _label(resource: dict[str, Any], fallback: str) -> str:
    for field_name in ("serviceType", "code", "reasonCode", "appointmentType"):
        value = resource.get(field_name)
        for concept in value if isinstance(value, list) else [value]:
            if isinstance(concept, dict):
                if concept.get("text"):
                    return str(concept["text"])
                for coding in concept.get("coding") or []:
                    if isinstance(coding, dict) and coding.get("display"):
                        return str(coding["display"])
    return str(resource.get("description") or fallback)


def is_mri_appointment(appointment: dict[str, Any], codes: CodeIndex, valueset: str, orders: dict[str, Fact]) -> bool:
    """A whole-spine MRI by its service type, its type, its reason, or the order it is based on."""
    concepts: list[Any] = []
    for field_name in ("serviceType", "reasonCode", "specialty"):
        value = appointment.get(field_name)
        concepts += value if isinstance(value, list) else [value] if isinstance(value, dict) else []
    if isinstance(appointment.get("appointmentType"), dict):
        concepts.append(appointment["appointmentType"])
    if _is_mri(codes, valueset, concepts):
        return True
    based_on = appointment.get("basedOn")
    references = [b.get("reference") for b in based_on if isinstance(b, dict)] if isinstance(based_on, list) else []
    return any(r in orders for r in references)


def appointment_start(appointment: dict[str, Any]) -> tuple[datetime | None, InputIssue | None]:
    """When the appointment begins; an issue when it has no readable start (then it cannot meet a deadline)."""
    start = parse_fhir_time(appointment.get("start") if isinstance(appointment.get("start"), str) else None)
    if start is None:
        message = "a whole-spine MRI appointment with no readable start: taken as not meeting the MRI deadline"
        return None, InputIssue(reference_of(appointment), "start", message, "counted")
    return start.latest, None


Booking = tuple[dict[str, Any], datetime | None]  # what is booked (for its name) and when: None, no time given


def _first_late(bookings: list[Booking], clock: Clock, event: str) -> Late | None:
    """The late booking, or None when one is in time. The earliest start decides; no start is late."""
    timed = sorted((when, b) for b, when in bookings if when is not None)
    if timed and timed[0][0] <= clock.due:
        return None
    untimed = [b for b, when in bookings if when is None]
    chosen, when = (untimed[0], None) if untimed else (timed[0][1], timed[0][0])
    return Late(clock, event, when, _label(chosen, "the MRI"), clock.now)


def _clock_to_keep(evaluation: Evaluation, codes: CodeIndex, valueset: str) -> Clock | None:
    """The binding clock, unless no rule with a deadline fires or a whole-spine MRI was done since it started."""
    clock = binding_clock(evaluation)
    if clock is None or mri_done_since(evaluation, codes, valueset, clock.started):
        return None
    return clock


def _mri_bookings(
    evaluation: Evaluation,
    codes: CodeIndex,
    valueset: str,
    appointments: list[dict[str, Any]],
    statuses: frozenset[str] | None = None,
) -> tuple[list[Booking], list[InputIssue]]:
    """The whole-spine MRI appointments (of these statuses, when given) with their starts, and the issues of those
    with no readable start."""
    orders = _mri_orders(evaluation, codes, valueset)
    issues: list[InputIssue] = []
    bookings: list[Booking] = []
    for appointment in appointments:
        if statuses is not None and appointment.get("status") not in statuses:
            continue
        if not is_mri_appointment(appointment, codes, valueset, orders):
            continue
        when, issue = appointment_start(appointment)
        issues += [issue] if issue else []
        bookings.append((appointment, when))
    return bookings, issues


def check_appointments(
    evaluation: Evaluation, codes: CodeIndex, valueset: str, appointments: list[dict[str, Any]]
) -> DeadlineCheck:
    """appointment-book: a proposed whole-spine MRI appointment that starts after the rule's deadline."""
    clock = _clock_to_keep(evaluation, codes, valueset)
    if clock is None:
        return DeadlineCheck()
    bookings, issues = _mri_bookings(evaluation, codes, valueset, appointments)
    if not bookings:
        return DeadlineCheck(issues=issues)  # not an MRI being booked: patient-view and the order hooks speak
    return DeadlineCheck(_first_late(bookings, clock, "booked"), issues)


def check_discharge(
    evaluation: Evaluation, codes: CodeIndex, valueset: str, appointments: list[dict[str, Any]]
) -> DeadlineCheck:
    """encounter-discharge: the rule fires and no whole-spine MRI was done since the sign, nor booked in time."""
    clock = _clock_to_keep(evaluation, codes, valueset)
    if clock is None:
        return DeadlineCheck()
    bookings, issues = _mri_bookings(evaluation, codes, valueset, appointments, _BOOKED)
    if not bookings:
        return DeadlineCheck(Late(clock, "discharged", None, "no whole-spine MRI done or booked", clock.now), issues)
    return DeadlineCheck(_first_late(bookings, clock, "booked"), issues)


def _task_end(task: dict[str, Any]) -> datetime | None:
    for path in (("restriction", "period"), ("executionPeriod",)):
        node: Any = task
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            end = parse_fhir_time(node.get("end") if isinstance(node.get("end"), str) else None)
            if end is not None:
                return end.latest
    return None


def _task_orders(task: dict[str, Any]) -> set[str]:
    references = set()
    focus = task.get("focus")
    if isinstance(focus, dict) and isinstance(focus.get("reference"), str):
        references.add(focus["reference"])
    for based in task.get("basedOn") or []:
        if isinstance(based, dict) and isinstance(based.get("reference"), str):
            references.add(based["reference"])
    return references


def check_dispatch(
    evaluation: Evaluation, codes: CodeIndex, valueset: str, dispatched: list[str], tasks: list[dict[str, Any]]
) -> DeadlineCheck:
    """order-dispatch: a whole-spine MRI order sent to a performer whose fulfilment Task ends after the deadline."""
    clock = _clock_to_keep(evaluation, codes, valueset)
    if clock is None:
        return DeadlineCheck()
    orders = _mri_orders(evaluation, codes, valueset)
    issues: list[InputIssue] = []
    bookings: list[Booking] = []
    for reference in dispatched:
        if reference not in orders:
            if reference.startswith("ServiceRequest/"):
                message = "dispatched order not in the prefetch, or not a whole-spine MRI: its timing was not checked"
                issues.append(InputIssue(reference, "context.dispatchedOrders", message, "set aside"))
            continue
        own = [t for t in tasks if reference in _task_orders(t)]
        ends = [(t, _task_end(t)) for t in own]
        if not own or all(end is None for _, end in ends):
            message = "no fulfilment Task gives a time for this whole-spine MRI: taken as not meeting the deadline"
            issues.append(InputIssue(reference, "context.fulfillmentTasks", message, "counted"))
        order = orders[reference]
        named = {"resourceType": "ServiceRequest", "code": {"text": order.label}}
        bookings += [(named, end) for _, end in ends] or [(named, None)]
    if not bookings:
        return DeadlineCheck(issues=issues)
    return DeadlineCheck(_first_late(bookings, clock, "dispatched"), issues)


def check_deadline(
    hook: str,
    evaluation: Evaluation,
    appointments: list[dict[str, Any]],
    dispatched: list[str],
    tasks: list[dict[str, Any]],
) -> DeadlineCheck:
    """The deadline hook's check on its inputs (the service, the rule tests and the clinical validation all ask
    here): appointment-book's proposed Appointments, encounter-discharge's booked ones, order-dispatch's orders."""
    codes, valueset = evaluation.ruleset.codes, evaluation.ruleset.config.whole_spine_mri
    if hook == "appointment-book":
        return check_appointments(evaluation, codes, valueset, appointments)
    if hook == "encounter-discharge":
        return check_discharge(evaluation, codes, valueset, appointments)
    return check_dispatch(evaluation, codes, valueset, dispatched, tasks)
