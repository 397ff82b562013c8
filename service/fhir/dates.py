"""FHIR date, dateTime and instant values as time intervals.

A partial date means a span ("2026-11" is the whole of November), so each value becomes the interval
[earliest, latest]: a window check asks whether that span can overlap the window. A dateTime
without a zone (invalid FHIR, yet sent) is read as UTC.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_END_OF_TIME = datetime.max.replace(tzinfo=UTC)
_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(.+))?)?)?$")


@dataclass(frozen=True, slots=True)
class FhirTime:
    """A FHIR time value as written, with the span it can mean."""

    text: str
    earliest: datetime
    latest: datetime


def parse_fhir_time(value: str | None) -> FhirTime | None:
    """Parse a FHIR date/dateTime/instant; None when absent or unreadable (callers then treat it as undated)."""
    if not value or not isinstance(value, str):
        return None
    match = _DATE.match(value.strip())
    if not match:
        return None
    year, month, day, time_part = match.groups()
    try:
        if time_part:
            stamp = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=UTC)
            return FhirTime(value, *_representable(stamp))
        y = int(year)
        if month is None:
            start, days = datetime(y, 1, 1, tzinfo=UTC), 366 if calendar.isleap(y) else 365
        elif day is None:
            m = int(month)
            start, days = datetime(y, m, 1, tzinfo=UTC), calendar.monthrange(y, m)[1]
        else:
            start, days = datetime(y, int(month), int(day), tzinfo=UTC), 1
    except (ValueError, OverflowError):
        return None
    try:
        latest = start + timedelta(days=days) - timedelta(microseconds=1)
    except OverflowError:  # a span ending with year 9999: valid FHIR, so it ends at the end of time
        latest = _END_OF_TIME
    return FhirTime(value, start, latest)


def _representable(stamp: datetime) -> tuple[datetime, datetime]:
    """The instant, kept in its own zone unless UTC cannot hold it: `0001-01-01T00:00:00+14:00` lies before the
    first instant Python can hold (valid FHIR, yet unrepresentable): it is read as that first instant, and its twin
    at the end of year 9999 as the last."""
    if stamp.year not in (1, 9999):  # only the calendar's first and last years can leave it with an offset
        return stamp, stamp
    try:
        stamp.astimezone(UTC)
    except OverflowError:
        stamp = datetime.min.replace(tzinfo=UTC) if stamp.year == 1 else _END_OF_TIME
    return stamp, stamp


def latest_of(times: list[FhirTime | None]) -> FhirTime | None:
    """The value that can be latest: a finding counts as recent if any of its dates is recent."""
    present = [t for t in times if t is not None]
    return max(present, key=lambda t: t.latest) if present else None
