"""When a Condition began: its onset in every FHIR form, recordedDate only without one."""

from typing import Any

import pytest

from service.fhir.dates import parse_fhir_time
from service.fhir.onset import condition_time

BIRTH = parse_fhir_time("1969-06-01")


def onset(resource: dict[str, Any], birth=BIRTH) -> tuple[str | None, str | None, str | None]:
    time, recorded, problem = condition_time({"recordedDate": "2026-11-17", **resource}, lambda: birth)
    return (time.text if time else None, recorded.text if recorded else None, problem)


@pytest.mark.parametrize(
    ("resource", "began"),
    [
        ({"onsetDateTime": "2016-03-04"}, "2016-03-04"),
        ({"onsetPeriod": {"start": "2015-01", "end": "2016"}}, "2015-01"),
        ({"onsetPeriod": {"end": "2016"}}, "2016"),
        ({"onsetString": "2016"}, "2016"),
        ({"onsetString": "since the accident in 1989"}, "1989"),
        ({"onsetString": "noticed 2026-11-02, worse since"}, "2026-11-02"),
        ({"onsetAge": {"value": 20, "unit": "years", "system": "http://unitsofmeasure.org", "code": "a"}}, "1989-1990"),
        ({"onsetAge": {"value": 6, "code": "mo"}}, "1969-1970"),
        ({"onsetRange": {"low": {"value": 20, "code": "a"}, "high": {"value": 25, "code": "a"}}}, "1989-1995"),
    ],
)
def test_the_onset_dates_the_finding_and_recorded_date_is_kept(resource: dict[str, Any], began: str) -> None:
    assert onset(resource) == (began, "2026-11-17", None)


def test_without_an_onset_the_recorded_date_dates_it() -> None:
    assert onset({}) == ("2026-11-17", None, None)


@pytest.mark.parametrize(
    ("resource", "birth", "why"),
    [
        ({"onsetAge": {"value": 20, "code": "a"}}, None, "Condition.onsetAge: no birth date"),
        ({"onsetString": "childhood"}, BIRTH, "Condition.onsetString: not a date"),
        ({"onsetString": "between 1989 and 1990"}, BIRTH, "Condition.onsetString: not a date"),
        ({"onsetAge": {"value": "twenty", "code": "a"}}, BIRTH, "Condition.onsetAge: no birth date"),
        ({"onsetAge": {"value": 20, "code": "furlong"}}, BIRTH, "Condition.onsetAge"),
        ({"onsetDateTime": "yesterday"}, BIRTH, "Condition.onsetDateTime: not a date"),
    ],
)
def test_an_onset_that_cannot_be_read_falls_back_to_recorded_date_and_says_so(resource, birth, why: str) -> None:
    began, recorded, problem = onset(resource, birth)
    assert (began, recorded) == ("2026-11-17", None)
    assert problem is not None
    assert problem.startswith(why.split(":")[0])
    assert problem.endswith("dated by recordedDate")


def test_an_age_on_the_29th_of_february_is_a_date() -> None:
    began, _, problem = onset({"onsetAge": {"value": 1, "code": "a"}}, parse_fhir_time("2024-02-29"))  # leap day
    assert problem is None
    assert began == "2025-2026"
