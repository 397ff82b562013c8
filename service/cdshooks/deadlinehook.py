"""The deadline hooks' inputs: the Appointments of appointment-book (context) and encounter-discharge (prefetch),
the dispatched orders and fulfilment Tasks of order-dispatch, read as the hooks define them and named in the
answer where they are not (a plain array where a Bundle is due, an entry that is not an Appointment)."""

from __future__ import annotations

from typing import Any

from service.cdshooks.deadline import DeadlineCheck, check_deadline
from service.cdshooks.models import HookContext
from service.cdshooks.prefetch import Unreadable, resources_of
from service.engine.evaluation import Evaluation
from service.fhir.validate import InputIssue


def _appointments(value: Any) -> tuple[list[dict[str, Any]], list[InputIssue]]:
    issues: list[InputIssue] = []
    if isinstance(value, list):
        message = "a plain array where the hook defines a Bundle of Appointments: read as its entries"
        issues.append(InputIssue("context.appointments", "appointments", message, "counted"))
        items = value
    else:
        try:
            items, _, problems = resources_of(value, "appointments")
        except Unreadable as error:
            return [], [error.issue]
        issues += problems
    kept = [a for a in items if isinstance(a, dict) and a.get("resourceType") == "Appointment"]
    if len(kept) < len(items):
        message = "an entry that is not an Appointment was not read"
        issues.append(InputIssue("context.appointments", "appointments", message, "set aside"))
    return kept, issues


def check_hook_deadline(
    hook: str, evaluation: Evaluation, context: HookContext, prefetched: list[dict[str, Any]]
) -> DeadlineCheck:
    """The deadline check of this hook, with the issues of reading its inputs."""
    issues: list[InputIssue] = []
    if hook == "appointment-book":
        appointments, issues = _appointments(getattr(context, "appointments", None))
    else:
        appointments = [r for r in prefetched if r.get("resourceType") == "Appointment"]
    tasks = [t for t in getattr(context, "fulfillmentTasks", None) or [] if isinstance(t, dict)]
    dispatched = list(getattr(context, "dispatchedOrders", None) or [])
    checked = check_deadline(hook, evaluation, appointments, dispatched, tasks)
    return DeadlineCheck(checked.late, [*issues, *checked.issues])
