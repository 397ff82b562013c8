"""What a clinician reads on a card: names, readable values and one local date format, never FHIR ids."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from service.cdshooks.display import clinical_date, finding, readable_value
from service.fhir.codes import LOINC, SNOMED
from service.fhir.dates import parse_fhir_time
from service.fhir.record import Fact

UTC = ZoneInfo("UTC")


@pytest.mark.parametrize(
    ("text", "zone", "shown"),
    [
        ("2026-11-19T23:30:00Z", "UTC", "19 Nov 2026"),
        ("2026-11-19T23:30:00Z", "Australia/Sydney", "20 Nov 2026"),  # the hospital's day, not UTC's
        ("2026-11-19T08:00:00+01:00", "Europe/London", "19 Nov 2026"),
        ("2026-11-05", "Australia/Sydney", "5 Nov 2026"),  # a plain date is that date everywhere
        ("2023-06", "UTC", "Jun 2023"),
        ("2019", "UTC", "2019"),
    ],
)
def test_dates_are_shown_in_one_local_format(text: str, zone: str, shown: str) -> None:
    assert clinical_date(parse_fhir_time(text), ZoneInfo(zone)) == shown


def test_an_undated_finding_says_so() -> None:
    assert clinical_date(None, UTC) == "undated"


def fact(keys, value=None, unit=None, label="Pain score", resource_type="Observation", status=None) -> Fact:
    return Fact("Observation/x", resource_type, tuple(keys), label, label, "present", None, status, value, unit)


def test_a_score_on_a_fixed_scale_reads_as_out_of_its_maximum() -> None:
    assert readable_value(fact([(LOINC, "72514-3")], 8.0, "{score}")) == "8/10"


def test_ucum_annotations_are_dropped_and_real_units_kept() -> None:
    assert readable_value(fact([(LOINC, "17861-6")], 2.9, "mmol/L")) == "2.9 mmol/L"
    assert readable_value(fact([(LOINC, "0000-0")], 3.0, "{count}")) == "3"
    assert readable_value(fact([(SNOMED, "26544005")])) == ""


def test_a_finding_without_a_display_names_its_code_and_a_condition_its_status() -> None:
    assert finding(fact([(SNOMED, "26544005")], label="(no display)")) == "SNOMED CT 26544005"
    remission = fact([(SNOMED, "254837009")], label="Breast cancer", resource_type="Condition", status="remission")
    assert finding(remission) == "Breast cancer (remission)"
    active = fact([(SNOMED, "254837009")], label="Breast cancer", resource_type="Condition", status="active")
    assert finding(active) == "Breast cancer"


def test_a_finding_recognised_from_words_says_so() -> None:
    from dataclasses import replace

    read = replace(fact((), label="Metastatic spinal cord compression T10", resource_type="Condition"), from_text="x")
    assert finding(read) == "Metastatic spinal cord compression T10 (recognised from its words)"
    past = replace(fact((), label="History of breast cancer", resource_type="Condition"), status="history")
    assert finding(past) == "History of breast cancer (past history)"
