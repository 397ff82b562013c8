from datetime import UTC, datetime

import pytest

from service.fhir.dates import latest_of, parse_fhir_time


def test_partial_dates_are_spans() -> None:
    month = parse_fhir_time("2026-02")
    assert month is not None
    assert month.earliest == datetime(2026, 2, 1, tzinfo=UTC)
    assert month.latest.date() == datetime(2026, 2, 28, tzinfo=UTC).date()
    year = parse_fhir_time("2024")
    assert year is not None
    assert year.latest.year == 2024
    assert year.latest.month == 12


def test_datetimes_keep_their_zone_and_naive_ones_are_utc() -> None:
    zoned = parse_fhir_time("2026-11-19T10:00:00+01:00")
    naive = parse_fhir_time("2026-11-19T09:00:00")
    assert zoned is not None
    assert naive is not None
    assert zoned.earliest == naive.earliest == datetime(2026, 11, 19, 9, tzinfo=UTC)


@pytest.mark.parametrize("value", [None, "", "yesterday", "2026-13-01", "2026-02-30", 20261101])
def test_unreadable_values_are_undated(value: object) -> None:
    assert parse_fhir_time(value) is None  # type: ignore[arg-type]


def test_latest_of_ignores_missing() -> None:
    assert latest_of([None, parse_fhir_time("2020"), parse_fhir_time("2026-01-01")]).text == "2026-01-01"  # type: ignore[union-attr]
    assert latest_of([None]) is None
