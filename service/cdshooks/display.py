"""How a card shows patient data to a clinician: the finding's name, its value with a readable unit, and its date
in one local format. FHIR ids never appear in the text; they stay in the card's extension for machines.
"""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

from service.engine.units import without_annotations
from service.fhir.codes import CPT, ICD10, ICD10CM, LOINC, RXNORM, SNOMED
from service.fhir.dates import FhirTime
from service.fhir.record import BOUNDED_SCORES, Fact

_SYSTEM_NAMES = {
    SNOMED: "SNOMED CT",
    ICD10CM: "ICD-10-CM",
    ICD10: "ICD-10",
    LOINC: "LOINC",
    RXNORM: "RxNorm",
    CPT: "CPT",
}
NO_DISPLAY = "(no display)"
UTC_ZONE = ZoneInfo("UTC")

_PRECISION = re.compile(r"^\d{4}(-\d{2})?(-\d{2})?$")


def clinical_date(time: FhirTime | None, zone: ZoneInfo) -> str:
    """`18 Nov 2026` (a timestamp in the hospital's time zone), `Jun 2023` or `2019` for partial dates."""
    if time is None:
        return "undated"
    text = time.text.strip()
    if _PRECISION.match(text):
        parts = text.split("-")
        if len(parts) == 1:
            return parts[0]
        if len(parts) == 2:
            return time.earliest.strftime("%b %Y")
        return time.earliest.strftime("%-d %b %Y")
    try:
        return time.earliest.astimezone(zone).strftime("%-d %b %Y")
    except OverflowError:  # year 1 or 9999 moved past the calendar's end by the zone: shown as written
        return time.earliest.strftime("%-d %b %Y")


def readable_value(fact: Fact) -> str:
    """`8/10` for a score on a fixed scale, `2.9 mmol/L` for a measurement, empty for a finding without a value."""
    if fact.value is None:
        return ""
    number = f"{fact.value:g}"
    scale = next((BOUNDED_SCORES[k] for k in fact.keys if k in BOUNDED_SCORES), None)
    if scale is not None and scale[0] == 0:
        return f"{number}/{scale[1]:g}"
    unit = without_annotations(fact.unit)
    return f"{number} {unit}".strip()


def system_name(system: str) -> str:
    """`RxNorm` for the RxNorm URI: what a reader calls a code system."""
    return _SYSTEM_NAMES.get(system, system)


_STATUS_WORDS = {"history": "past history", "remission": "in remission"}


def shown_value(fact: Fact) -> str:
    """The evidence table's value: a measurement (`8/10`), else what the record says of the finding: a
    Condition's clinical status (`active`, `in remission`, `past history`), an order's or study's status, or
    `present` for an observed finding (only present findings are evidence)."""
    measured = readable_value(fact)
    if measured:
        return measured
    if fact.status and fact.resource_type != "Observation":
        return _STATUS_WORDS.get(fact.status, fact.status)
    return fact.presence


def finding(fact: Fact, *, with_status: bool = True) -> str:
    """The finding's name, with a Condition's clinical status when it is not simply active (unless the status is
    shown beside it, as in the evidence table)."""
    label = fact.label
    if not label or label == NO_DISPLAY:  # a coding without a display: name the code, so it can be looked up
        system, code = fact.keys[0] if fact.keys else ("", "")
        label = f"{system_name(system)} {code}".strip() or fact.resource_type
    if with_status and fact.status == "history":
        label += " (past history)"
    elif with_status and fact.resource_type == "Condition" and fact.status and fact.status != "active":
        label += f" ({fact.status})"
    if fact.from_text:  # no code said it: the clinician should know the service read it from words
        label += " (recognised from its words)"
    return label
