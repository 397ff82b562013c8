"""When a Condition began: its onset, never the day it was typed, because EHRs re-record old problems.

`onsetDateTime`, `onsetPeriod`, `onsetAge` and `onsetRange` (with the patient's birth date) and `onsetString`
(a date or a year written in it) date a finding; `recordedDate` dates it only when no onset is given. An onset that
is given but cannot be read falls back to `recordedDate` (the side that lets a card fire) and says so.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from service.fhir.dates import FhirTime, parse_fhir_time

_YEAR = re.compile(r"\b(1[89]\d{2}|2\d{3})\b")
_DATE_IN_TEXT = re.compile(r"\b\d{4}-\d{2}(-\d{2})?\b")
# Age units (UCUM) and their length in days, for onsetAge; a year is calendar arithmetic, below.
_AGE_DAYS = {"mo": 30.4375, "wk": 7.0, "d": 1.0, "h": 1 / 24, "min": 1 / 1440}
_YEAR_UNITS = frozenset({"a", "yr", "year", "years", "y"})
_ONSET_FIELDS = ("onsetDateTime", "onsetPeriod", "onsetAge", "onsetRange", "onsetString")


def _add_years(moment: datetime, years: float) -> datetime:
    whole = int(years)
    try:
        shifted = moment.replace(year=moment.year + whole)
    except ValueError:  # 29 February in a year that has none
        shifted = moment.replace(year=moment.year + whole, day=28)
    return shifted + timedelta(days=(years - whole) * 365.25)


def _after_birth(birth: FhirTime, age: Any) -> tuple[datetime, datetime] | None:
    """The span an age (a FHIR Age: value and UCUM unit) covers after the birth: age 30 is [30 y, 31 y)."""
    if not isinstance(age, dict):
        return None
    value = age.get("value")
    unit = str(age.get("code") or age.get("unit") or "a").strip().lower()
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 150 * 366:
        return None
    try:
        if unit in _YEAR_UNITS:
            return _add_years(birth.earliest, value), _add_years(birth.latest, value + 1)
        days = _AGE_DAYS.get(unit)
        if days is None:
            return None
        return birth.earliest + timedelta(days=value * days), birth.latest + timedelta(days=(value + 1) * days)
    except (OverflowError, ValueError):
        return None


def _span(earliest: datetime, latest: datetime) -> FhirTime:
    text = str(earliest.year) if earliest.year == latest.year else f"{earliest.year}-{latest.year}"
    return FhirTime(text, earliest, latest)


def _age_onset(resource: dict[str, Any], birth_date: Callable[[], FhirTime | None]) -> FhirTime | None:
    birth = birth_date()
    if birth is None:
        return None
    if "onsetAge" in resource:
        span = _after_birth(birth, resource["onsetAge"])
        return _span(*span) if span else None
    onset_range = resource.get("onsetRange")
    if isinstance(onset_range, dict):
        low = _after_birth(birth, onset_range.get("low"))
        high = _after_birth(birth, onset_range.get("high"))
        if low and high:
            return _span(low[0], high[1])
        if low or high:
            return _span(*(low or high))  # type: ignore[misc]
    return None


def _string_onset(text: Any) -> FhirTime | None:
    if not isinstance(text, str):
        return None
    exact = parse_fhir_time(text.strip())
    if exact is not None:
        return exact
    date = _DATE_IN_TEXT.search(text)
    if date is not None and (found := parse_fhir_time(date.group(0))) is not None:
        return found
    years = _YEAR.findall(text)
    return parse_fhir_time(years[0]) if len(years) == 1 else None


def _period_onset(period: Any) -> FhirTime | None:
    if not isinstance(period, dict):
        return None
    return parse_fhir_time(period.get("start")) or parse_fhir_time(period.get("end"))


def condition_time(
    resource: dict[str, Any], birth: Callable[[], FhirTime | None]
) -> tuple[FhirTime | None, FhirTime | None, str | None]:
    """(when the finding began, its recordedDate, a problem reading the onset or None). `birth` gives the birth
    date, looked for only when an age dates the onset."""
    recorded = parse_fhir_time(resource.get("recordedDate"))
    given = next((name for name in _ONSET_FIELDS if resource.get(name) is not None), None)
    if given is None:
        return recorded, None, None
    if given == "onsetDateTime":
        onset = parse_fhir_time(resource.get("onsetDateTime"))
    elif given == "onsetPeriod":
        onset = _period_onset(resource.get("onsetPeriod"))
    elif given == "onsetString":
        onset = _string_onset(resource.get("onsetString"))
    else:
        onset = _age_onset(resource, birth)
    if onset is not None:
        return onset, recorded, None
    why = "no birth date to count the age from" if given in ("onsetAge", "onsetRange") else "not a date"
    return recorded, None, f"Condition.{given}: {why}; dated by recordedDate"
