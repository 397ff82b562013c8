"""An example's hook call moved in time: every date in it shifted by whole days, so the example gives the same
answer at another moment, such as now, against a service in production mode (which evaluates at its own clock and
ignores the examples' evaluation-time extension, as it must).

`python -m authoring examples request ID --at now` prints it. The shift is a whole number of days, so a date
stays a date and a time keeps its time of day; the patient's story keeps its shape to within a day.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from service.cdshooks.call import EVALUATION_TIME_EXTENSION

_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_DATETIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(:\d{2}(?:\.\d+)?)?(Z|[+-]\d{2}:\d{2})$")


def days_between(then: datetime, at: datetime) -> int:
    return round((at - then) / timedelta(days=1))


def shift_value(value: str, days: int) -> str:
    """`value` moved by `days` when it is a FHIR date or dateTime (full date); anything else unchanged."""
    if _DATE.match(value):
        return (date.fromisoformat(value) + timedelta(days=days)).isoformat()
    match = _DATETIME.match(value)
    if match:
        moved = date(int(match[1]), int(match[2]), int(match[3])) + timedelta(days=days)
        return f"{moved.isoformat()}{value[10:]}"
    return value


def shift(node: Any, days: int) -> Any:
    if isinstance(node, dict):
        return {key: shift(child, days) for key, child in node.items()}
    if isinstance(node, list):
        return [shift(child, days) for child in node]
    if isinstance(node, str):
        return shift_value(node, days)
    return node


def request_at(request: dict[str, Any], at: datetime) -> dict[str, Any]:
    """The hook call with its dates moved so that its evaluation time falls on `at`'s day, and without the
    evaluation-time extension (the service's clock decides)."""
    extension = dict(request.get("extension") or {})
    then = datetime.fromisoformat(str(extension.pop(EVALUATION_TIME_EXTENSION)).replace("Z", "+00:00"))
    days = days_between(then, at.astimezone(UTC))
    moved = {key: shift(value, days) for key, value in request.items() if key not in ("extension", "hookInstance")}
    moved["hookInstance"] = request["hookInstance"]
    if extension:
        moved["extension"] = extension
    return moved
