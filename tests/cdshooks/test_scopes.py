"""SMART v1 and v2 scopes, as a `fhirAuthorization` carries them, read for what the service may fetch."""

import pytest

from service.cdshooks.scopes import coverage, interaction_of, parse_scopes

QUERIES = {
    "patient": "Patient/p1",
    "conditions": "Condition?patient=p1",
    "observations": "Observation?patient=p1&category=exam",
}


@pytest.mark.parametrize(
    "scope",
    [
        "patient/*.read",  # SMART v1
        "user/*.*",
        "patient/Patient.read patient/Condition.read patient/Observation.read",
        "patient/*.rs",  # SMART v2 (CDS Hooks 3.0)
        "system/*.cruds",
        "launch openid fhirUser patient/Patient.r patient/Condition.rs patient/Observation.s",
    ],
)
def test_scopes_that_cover_every_key(scope: str) -> None:
    assert coverage(scope, QUERIES).missing == {}


def test_a_scope_without_search_does_not_cover_a_search() -> None:
    found = coverage("patient/Patient.r patient/Condition.r patient/Observation.rs", QUERIES)
    assert found.missing == {"conditions": "search of Condition (patient/Condition.s or .read)"}


def test_write_only_or_unknown_words_grant_nothing() -> None:
    assert parse_scopes("patient/*.write launch/patient openid nonsense patient/Observation.sr") == [
        parse_scopes("patient/*.cud")[0]
    ]
    assert set(coverage("patient/*.write", QUERIES).missing) == set(QUERIES)


def test_a_v2_scope_narrowed_by_a_query_is_named() -> None:
    found = coverage("patient/*.rs?category=laboratory patient/Patient.r", QUERIES)
    assert found.missing == {}
    assert found.narrowed == {"conditions": "category=laboratory", "observations": "category=laboratory"}


def test_a_read_by_id_and_a_search_are_told_apart() -> None:
    assert interaction_of("Patient/p1") == ("Patient", "r")
    assert interaction_of("Observation?patient=p1") == ("Observation", "s")
